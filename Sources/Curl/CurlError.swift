import Basics
import CCurl

/// A request that got no HTTP response. `description` names the kind and curl's code, never the
/// URL or headers (they can carry tokens).
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
    }

    public let code: Code
    /// libcurl's `CURLcode`, 0 when curl was never reached.
    public let curlCode: Int
    let detail: String

    init(code: Code, curlCode: Int = 0, detail: String) {
        self.code = code
        self.curlCode = curlCode
        self.detail = detail
    }

    init(curlCode: CURLcode, detail: String) {
        let code: Code
        switch curlCode {
        case CURLE_OPERATION_TIMEDOUT: code = .timeout
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT: code = .connect
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM:
            code = .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: code = .badRequest
        default: code = .transfer
        }
        self.init(code: code, curlCode: Int(curlCode.rawValue), detail: detail)
    }

    public var description: String { "http request failed: \(self.code.rawValue) (curl \(self.curlCode))" }
    public var debugDescription: String { "\(self.description): \(self.detail)" }
}
