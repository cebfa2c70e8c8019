import Basics
import Curl
import Foundation

/// Why a MoMo call did not give the answer asked for. `description` never carries a token, a key,
/// a subscription key or a request body; MTN's own message is cut short and scrubbed of them.
public enum MoMoError: LogSafeError, Sendable, Hashable, CustomStringConvertible {
    /// Refused before it left: a field is outside what MoMo accepts.
    case invalidRequest(String)
    /// MoMo answered 4xx: the request was refused, not taken. `code` is MoMo's (`PAYER_NOT_FOUND`,
    /// `NOT_ENOUGH_FUNDS`, ...) or `HTTP_<status>` when the body named none.
    case refused(status: Int, code: String, message: String)
    /// 409 `RESOURCE_ALREADY_EXIST` to a create call: an earlier request under this reference got
    /// there. The caller treats the movement as accepted and follows it by its status.
    case duplicateReference
    /// 404 `RESOURCE_NOT_FOUND` to a status query: MoMo never took a request under this reference
    /// (a deposit can be failed; a transfer can be sent again under the same reference).
    case notFound
    /// MoMo answered 5xx (or 408): its own state is not known.
    case serverError(status: Int)
    /// An answer that is neither the documented success nor MoMo's error shape.
    case malformedResponse(status: Int)
    /// No answer: connect failure, timeout, shutdown. The request may or may not have been taken.
    case transport(CurlError)
    /// The calling task was cancelled while waiting.
    case cancelled

    public var description: String {
        switch self {
        case .invalidRequest(let reason): return "invalid MoMo request: \(reason)"
        case .refused(let status, let code, let message): return "MoMo refused (\(status) \(code)): \(message)"
        case .duplicateReference: return "MoMo already has a request under this reference"
        case .notFound: return "MoMo has no request under this reference"
        case .serverError(let status): return "MoMo answered \(status)"
        case .malformedResponse(let status): return "MoMo answered \(status) in an unexpected shape"
        case .transport(let error): return "no answer from MoMo: \(error)"
        case .cancelled: return "cancelled while waiting for MoMo"
        }
    }

    /// The call may have been taken although no usable answer came: the money may have moved.
    /// Ask the status (under the same reference) before deciding; never fail the movement on this.
    public var outcomeUnknown: Bool {
        switch self {
        case .transport, .cancelled, .serverError, .malformedResponse: return true
        case .invalidRequest, .refused, .duplicateReference, .notFound: return false
        }
    }

    /// A short stable name for metric labels.
    public var kind: String {
        switch self {
        case .invalidRequest: "invalid_request"
        case .refused: "refused"
        case .duplicateReference: "duplicate_reference"
        case .notFound: "not_found"
        case .serverError: "server_error"
        case .malformedResponse: "malformed_response"
        case .transport: "transport"
        case .cancelled: "cancelled"
        }
    }

    /// MoMo's error body (`{"code","message"}`, or the API gateway's `{"statusCode","message"}`)
    /// as a refusal; the message bounded, printable and without any of `secrets`.
    static func refusal(status: Int, body: [UInt8], secrets: [String]) -> MoMoError {
        let json = body.count <= 16 * 1024 ? JSONValue.parse(body) : nil
        let code = json?["code"]?.string.flatMap(MoMoTransaction.codeShaped) ?? "HTTP_\(status)"
        return .refused(status: status, code: code, message: Self.scrubbed(json?["message"]?.string ?? "", secrets: secrets))
    }

    /// At most 200 printable characters, every secret replaced.
    static func scrubbed(_ message: String, secrets: [String]) -> String {
        var text = String(String.UnicodeScalarView(message.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(200)))
        for secret in secrets where secret.count >= 4 { text = text.replacingOccurrences(of: secret, with: "[redacted]") }
        return text
    }
}
