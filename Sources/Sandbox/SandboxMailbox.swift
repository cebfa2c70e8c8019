import Foundation
import Synchronization

/// The mail the sandbox's SMTP server took (``SandboxMailServer``): what `report daily --email`
/// sent on a development gateway, shown at `GET /sandbox/mail` as the handsets' SMS are at
/// `/sandbox/inbox`.
///
/// Held in memory (a restart empties it) and bounded: the newest ``capacity`` messages.
public final class SandboxMailbox: Sendable {
    /// One message as it arrived, with the headers a reader looks for first.
    public struct Message: Sendable, Codable, Equatable {
        /// Increasing across the mailbox: a reader asks for what came after the last one it saw.
        public let sequence: Int
        public let receivedAt: Date
        /// The envelope: `MAIL FROM` and each `RCPT TO`.
        public let envelopeFrom: String
        public let envelopeTo: [String]
        /// The user the client logged in as (`AUTH PLAIN`), if it did; never the password.
        public let login: String?
        /// The `From`, `To` and `Subject` headers, encoded words (RFC 2047) decoded.
        public let from: String
        public let to: String
        public let subject: String
        public let size: Int
        /// The whole message as it arrived (dot-stuffing undone), CRLF line ends.
        public let raw: String
    }

    public let capacity: Int
    private let state = Mutex<(next: Int, messages: [Message])>((1, []))

    public init(capacity: Int = 100) {
        self.capacity = capacity
    }

    /// Keeps a message; the oldest goes when the mailbox is full.
    @discardableResult
    func keep(_ envelope: SMTPSession.Envelope, at date: Date = Date()) -> Message {
        let raw = String(decoding: envelope.data, as: UTF8.self)
        let headers = Self.headers(of: raw)
        return self.state.withLock { state in
            let message = Message(
                sequence: state.next, receivedAt: date, envelopeFrom: envelope.from, envelopeTo: envelope.recipients, login: envelope.login,
                from: headers["from"] ?? "", to: headers["to"] ?? "", subject: headers["subject"].map(Self.decodeWords) ?? "", size: envelope.data.count,
                raw: raw
            )
            state.next += 1
            state.messages.append(message)
            if state.messages.count > self.capacity { state.messages.removeFirst(state.messages.count - self.capacity) }
            return message
        }
    }

    /// The messages after sequence `after`, oldest first.
    public func messages(after: Int = 0) -> [Message] {
        self.state.withLock { state in state.messages.filter { $0.sequence > after } }
    }

    /// The message numbered `sequence`, while it is kept.
    public func message(_ sequence: Int) -> Message? {
        self.state.withLock { state in state.messages.first { $0.sequence == sequence } }
    }

    /// The header section's fields by lowercased name (the first of each), folded lines unfolded.
    static func headers(of raw: String) -> [String: String] {
        let section = raw.components(separatedBy: "\r\n\r\n").first ?? ""
        let unfolded = section.replacingOccurrences(of: "\r\n ", with: " ").replacingOccurrences(of: "\r\n\t", with: " ")
        var fields: [String: String] = [:]
        for line in unfolded.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            if fields[name] == nil { fields[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }

    /// A header value with its RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?UTF-8?Q?...?=`)
    /// decoded; the space between two encoded words dropped, as the RFC says. A word that does not
    /// decode is left as it is.
    static func decodeWords(_ value: String) -> String {
        var result = ""
        var previousEncoded: Bool?
        for token in value.split(separator: " ", omittingEmptySubsequences: false) {
            if let decoded = Self.decodeWord(token) {
                if previousEncoded == false { result += " " }
                result += decoded
                previousEncoded = true
            } else {
                if previousEncoded != nil { result += " " }
                result += token
                previousEncoded = false
            }
        }
        return result
    }

    private static func decodeWord(_ token: Substring) -> String? {
        guard token.hasPrefix("=?"), token.hasSuffix("?="), token.count > 4 else { return nil }
        let parts = token.dropFirst(2).dropLast(2).split(separator: "?", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, ["utf-8", "us-ascii"].contains(parts[0].lowercased()) else { return nil }
        switch parts[1].uppercased() {
        case "B": return Data(base64Encoded: String(parts[2])).map { String(decoding: $0, as: UTF8.self) }
        case "Q":
            var bytes: [UInt8] = []
            var index = parts[2].startIndex
            while index < parts[2].endIndex {
                let character = parts[2][index]
                if character == "=", let end = parts[2].index(index, offsetBy: 3, limitedBy: parts[2].endIndex),
                    let byte = UInt8(parts[2][parts[2].index(after: index)..<end], radix: 16)
                {
                    bytes.append(byte)
                    index = end
                    continue
                }
                bytes += character == "_" ? [0x20] : Array(String(character).utf8)
                index = parts[2].index(after: index)
            }
            return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }
}
