import Basics
import Curl

/// Why a Daraja call did not give the answer asked for. `description` never carries a token,
/// a key or a request body.
public enum DarajaError: LogSafeError, Sendable, Hashable, CustomStringConvertible {
    /// Refused before it left: a field is outside what Daraja accepts.
    case invalidRequest(String)
    /// Daraja answered with its error shape (`errorCode`, `errorMessage`).
    case api(status: Int, code: String, message: String)
    /// An answer that is neither a success nor Daraja's error shape.
    case malformedResponse(status: Int)
    /// No answer: connect failure, timeout, shutdown. The request may or may not have been taken.
    case transport(CurlError)
    /// The calling task was cancelled while waiting.
    case cancelled

    public var description: String {
        switch self {
        case .invalidRequest(let reason): return "invalid request: \(reason)"
        case .api(let status, let code, let message): return "Daraja \(status) \(code): \(message)"
        case .malformedResponse(let status): return "Daraja answered \(status) in an unexpected shape"
        case .transport(let error): return "no answer from Daraja: \(error)"
        case .cancelled: return "cancelled while waiting for Daraja"
        }
    }

    /// `404.001.03` / `401.002.01`: the token is no longer valid (another one was issued).
    public var isInvalidToken: Bool {
        guard case .api(_, let code, _) = self else { return false }
        return code == "404.001.03" || code == "401.002.01"
    }

    /// Spike arrest or a busy system: back off and try again later.
    public var isBusy: Bool {
        guard case .api(let status, let code, let message) = self else { return false }
        return code == "500.003.02" || status == 429 || message.localizedLowercase.contains("spike arrest")
            || message.localizedLowercase.contains("unable to lock subscriber")
    }

    /// The STK query's "still running" answer: pending, not a failure.
    public var isBeingProcessed: Bool {
        guard case .api(_, let code, let message) = self else { return false }
        return code == "500.001.1001" && message.localizedLowercase.contains("being processed")
    }

    /// B2C refused an OriginatorConversationID it has seen: the first request was taken.
    public var isDuplicateOriginator: Bool {
        guard case .api(_, _, let message) = self else { return false }
        return message.localizedLowercase.contains("duplicate originatorconversationid")
    }

    /// The call may have been taken: no answer came, or the answer was a server error (5xx), after
    /// which Safaricom's own state is not known. A payout with such an attempt is settled only by a
    /// result callback or a transaction-status answer.
    public var mayHaveBeenTaken: Bool {
        if self.outcomeUnknown { return true }
        if case .api(let status, _, _) = self { return status >= 500 }
        return false
    }

    /// The call may have been taken although no answer came: query before trying again.
    public var outcomeUnknown: Bool {
        switch self {
        case .transport, .cancelled: return true
        case .malformedResponse(let status): return status >= 500
        // Daraja's error shape is an answer: the request was refused, not taken.
        case .api, .invalidRequest: return false
        }
    }
}
