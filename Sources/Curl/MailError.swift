import Basics

/// A mail that cannot be written or sent as asked: a header value carrying a line break, an address
/// that is not one, an SMTP URL the client does not take. `description` names the header or the
/// setting, never the value (a subject can carry anything; an SMTP URL carries a password).
public struct MailError: LogSafeError, Sendable, Hashable {
    public enum Code: String, Sendable, Hashable {
        /// A header value holds a CR, an LF or another control character: it would start a header
        /// (or a body) of its own.
        case headerInjection
        /// An address (sender or recipient) is not a plain `local@domain`.
        case invalidAddress
        /// An attachment's file name or type cannot be written into its headers.
        case invalidAttachment
        /// The SMTP URL is not an `smtp://` or `smtps://` URL with a host.
        case invalidServer
        /// No recipient was given.
        case noRecipient
    }

    public let code: Code
    /// What was refused: a header's name, an attachment's position, the URL's part; never a value.
    public let subject: String

    public init(_ code: Code, _ subject: String) {
        (self.code, self.subject) = (code, subject)
    }

    public var description: String {
        switch self.code {
        case .headerInjection: "mail refused: the \(self.subject) header's value holds a line break or a control character"
        case .invalidAddress: "mail refused: \(self.subject) is not a plain address such as finance@example.com"
        case .invalidAttachment: "mail refused: \(self.subject)"
        case .invalidServer: "the SMTP URL \(self.subject)"
        case .noRecipient: "mail refused: no recipient"
        }
    }
}
