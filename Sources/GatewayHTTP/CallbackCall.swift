import Logging
import NIOCore

/// One provider callback as a route sees it, whichever server read it: the hop server's channel
/// handler (``HopServer``) or Hummingbird. Everything a route may use of the request is here, and
/// nothing else: the route's own token segment, the peer and the proxy's `X-Forwarded-For`, the
/// query and the body.
public struct CallbackCall: Sendable {
    /// The route as registered (`/ussd/africastalking/{callback_token}`): what logs and metrics name.
    public let route: String
    /// The token segment the request carried, when the route has one.
    public let token: Substring?
    /// The query after `?`, still percent-encoded; empty when none.
    public let query: Substring
    /// The peer's address, when known.
    public let peer: String?
    /// Every `X-Forwarded-For` value, in order.
    public let forwardedFor: [String]
    /// The body, at most ``CallbackBody/maximum`` bytes.
    public let body: ByteBuffer
    /// The request's id (a sane `X-Request-Id` from a proxy, or one of ours).
    public let requestID: String
    private let baseLogger: Logger

    public init(route: String, token: Substring?, query: Substring, peer: String?, forwardedFor: [String], body: ByteBuffer, requestID: String, logger: Logger) {
        self.route = route
        self.token = token
        self.query = query
        self.peer = peer
        self.forwardedFor = forwardedFor
        self.body = body
        self.requestID = requestID
        self.baseLogger = logger
    }

    /// The request's logger, with its `request_id` (made when something is logged, not per request).
    public var logger: Logger {
        var logger = self.baseLogger
        logger[metadataKey: "request_id"] = .string(self.requestID)
        return logger
    }
}

/// What a callback route answers: a status, a content type and a body. Refusals are thrown as
/// ``CallbackRefused`` or ``BadCallback``.
public struct CallbackAnswer: Sendable, Equatable {
    public var status: Int
    public var contentType: String?
    /// Further headers, in the order given (none of `Content-Length`, `Date`, `Server` or
    /// `X-Request-Id`: the server adds those).
    public var headers: [(String, String)]
    public var body: String

    public init(status: Int = 200, contentType: String? = nil, headers: [(String, String)] = [], body: String = "") {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// Plain text, 200.
    public static func text(_ body: String, headers: [(String, String)] = []) -> CallbackAnswer {
        CallbackAnswer(contentType: "text/plain; charset=utf-8", headers: headers, body: body)
    }

    public static func == (a: CallbackAnswer, b: CallbackAnswer) -> Bool {
        a.status == b.status && a.contentType == b.contentType && a.body == b.body
            && a.headers.map { [$0.0, $0.1] } == b.headers.map { [$0.0, $0.1] }
    }
}

/// A callback refused before its body was read: a wrong token (404, as if the route did not
/// exist), a source outside the allowlist (403), a body over the limit (413). Answered with an
/// empty body.
public struct CallbackRefused: Error, Sendable {
    public let status: Int

    public init(status: Int) {
        self.status = status
    }
}
