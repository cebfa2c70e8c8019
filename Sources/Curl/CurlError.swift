import Basics
import CCurl

/// A request that got no HTTP response, or a mail the SMTP server did not take. `description` names
/// the kind, curl's code and (for mail) the server's last reply code, never the URL or headers
/// (they can carry tokens and passwords).
public struct CurlError: LogSafeError, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The connect or total timeout passed.
        case timeout
        /// Name resolution or TCP connect failed.
        case connect
        /// The TLS handshake or certificate verification failed.
        case tls
        /// The response broke a limit (too large) or the transfer failed midway.
        case transfer
        /// The request itself was malformed (bad URL, unsupported protocol).
        case badRequest
        /// The client is shut down.
        case shutdown
        /// The mail server answered with a refusal: the login, the sender, a recipient or the message.
        case refused
    }

    /// What failed: an HTTP request or a mail.
    public enum Operation: String, Sendable, Hashable {
        case http = "http request"
        case mail = "mail delivery"
    }

    public let code: Code
    /// libcurl's `CURLcode`, 0 when curl was never reached.
    public let curlCode: Int
    public let operation: Operation
    /// A mail server's last reply code (`550`), 0 when there was none.
    public let serverReply: Int
    let detail: String

    init(code: Code, curlCode: Int = 0, detail: String, operation: Operation = .http, serverReply: Int = 0) {
        self.code = code
        self.curlCode = curlCode
        self.detail = detail
        self.operation = operation
        self.serverReply = serverReply
    }

    init(curlCode: CURLcode, detail: String, operation: Operation = .http, serverReply: Int = 0) {
        let code: Code
        switch curlCode {
        case CURLE_OPERATION_TIMEDOUT: code = .timeout
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT: code = .connect
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_USE_SSL_FAILED:
            code = .tls
        case CURLE_LOGIN_DENIED: code = .refused
        case _ where operation == .mail && serverReply >= 400: code = .refused
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: code = .badRequest
        default: code = .transfer
        }
        self.init(code: code, curlCode: Int(curlCode.rawValue), detail: detail, operation: operation, serverReply: serverReply)
    }

    public var description: String {
        let reply = self.serverReply > 0 ? ", server replied \(self.serverReply)" : ""
        return "\(self.operation.rawValue) failed: \(self.code.rawValue) (curl \(self.curlCode)\(reply))"
    }
    public var debugDescription: String { "\(self.description): \(self.detail)" }
}
