import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import ServiceLifecycle
import Synchronization

/// The routes the hop server answers itself: every aggregator's USSD route and the SMS callbacks.
/// Filled while the application is built (``add(_:_:guardian:_:)``), read-only once it serves: that
/// is what makes it `Sendable`.
///
/// As a `Service` it outlives the server at graceful shutdown until every hop it started has
/// answered: a hop whose caller went away still finishes its session write and its actions
/// before the clients it uses close. List it after every service a hop uses.
public final class HopRoutes: @unchecked Sendable, Service {
    /// A route: its method, pattern, guard (checked on the request's head, before its body is
    /// read) and answer.
    struct Route: Sendable {
        let method: HopMethod
        let pattern: String
        let hasToken: Bool
        let guardian: CallbackGuard?
        let answer: Answer
    }

    private struct InFlight {
        var running = 0
        var stopping = false
        var drained: CheckedContinuation<Void, Never>?
    }

    private let inFlight = Mutex(InFlight())

    /// How a route answers: at once on the loop (no task), or as a task on the loop.
    enum Answer: Sendable {
        case now(@Sendable (CallbackCall) -> CallbackAnswer)
        case later(@Sendable (CallbackCall) async throws -> CallbackAnswer)
    }

    /// By method and path without the token segment.
    private var routes: [String: Route] = [:]
    let log: RequestLog
    let metrics: RequestMetrics

    public init(log: RequestLog, metrics: RequestMetrics) {
        self.log = log
        self.metrics = metrics
    }

    /// Answers `method base` (with the guard's token as one more segment when it has one) with
    /// `answer`, once `guardian` has passed the request: the route does not check it again.
    public func add(
        _ method: HopMethod, _ base: String, guardian: CallbackGuard, _ answer: @escaping @Sendable (CallbackCall) async throws -> CallbackAnswer
    ) {
        self.routes[method.rawValue + " " + base] = Route(
            method: method, pattern: guardian.pattern(base), hasToken: guardian.hasToken, guardian: guardian, answer: .later(answer)
        )
    }

    /// Answers `method path`, unguarded, at once on the event loop: for routes that do no work
    /// (`GET /healthz`).
    public func add(_ method: HopMethod, _ path: String, now answer: @escaping @Sendable (CallbackCall) -> CallbackAnswer) {
        self.routes[method.rawValue + " " + path] = Route(method: method, pattern: path, hasToken: false, guardian: nil, answer: .now(answer))
    }

    /// Waits for graceful shutdown (the server stops first), then for the hops still running.
    public func run() async throws {
        try? await gracefulShutdown()
        await withCheckedContinuation { (drained: CheckedContinuation<Void, Never>) in
            let idle = self.inFlight.withLock { state in
                state.stopping = true
                if state.running == 0 { return true }
                state.drained = drained
                return false
            }
            if idle { drained.resume() }
        }
    }

    /// A hop's task started.
    func started() {
        self.inFlight.withLock { $0.running += 1 }
    }

    /// A hop's task ended.
    func ended() {
        let drained = self.inFlight.withLock { state -> CheckedContinuation<Void, Never>? in
            state.running -= 1
            guard state.running == 0, state.stopping else { return nil }
            defer { state.drained = nil }
            return state.drained
        }
        drained?.resume()
    }

    /// The patterns served, for the start-up log and the tests.
    public var patterns: [String] { self.routes.values.map { $0.method.rawValue + " " + $0.pattern }.sorted() }

    /// The route a request's method and URI ask for, the token segment and the query. An
    /// absolute-form URI is taken by its path, and a trailing `/` does not count, as for
    /// Hummingbird's router.
    func match(_ method: HTTPMethod, _ uri: String) -> (Route, token: Substring?, query: Substring)? {
        guard !self.routes.isEmpty else { return nil }
        let mark = uri.firstIndex(of: "?")
        var path = uri[..<(mark ?? uri.endIndex)]
        let query = mark.map { uri[uri.index(after: $0)...] } ?? ""
        if !path.hasPrefix("/"), let scheme = path.range(of: "://") {
            path = path[scheme.upperBound...].firstIndex(of: "/").map { path[$0...] } ?? "/"
        }
        if path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        if let route = self.routes[method.rawValue + " " + path], !route.hasToken { return (route, nil, query) }
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        let token = path[path.index(after: slash)...]
        guard !token.isEmpty, let route = self.routes[method.rawValue + " " + path[..<slash]], route.hasToken else { return nil }
        return (route, token, query)
    }
}

/// The methods a hop route is served for.
public enum HopMethod: String, Sendable {
    case get = "GET"
    case post = "POST"
}

/// Hummingbird's HTTP/1.1 channel with the hop routes answered in the channel pipeline.
///
/// A request for a hop route is read, answered and written by ``HopHandler`` on the connection's
/// event loop, bytes in to bytes out: no router, no middleware chain, no async sequence per body.
/// Every other request goes on to Hummingbird as before. NIO's pipelining handler sits in front
/// of both, so a connection's responses leave in the order of its requests whichever answered
/// them, and a graceful shutdown waits for the response in flight.
struct HopHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let routes: HopRoutes
    let serverName: String?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let operations = channel.pipeline.syncOperations
            // Hummingbird's limits on a request's headers, for both servers.
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = self.http1.configuration.httpDecoder.maxHeaderFieldSize
            limits.maxHeaderListSize = self.http1.configuration.httpDecoder.maxHeaderListSize
            limits.maxHeaderFieldCount = self.http1.configuration.httpDecoder.maxHeaderFieldCount
            try operations.configureHTTPServerPipeline(
                withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false, withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try operations.addHandler(ReadWhileAnswering(), position: .before(try operations.handler(type: HTTPServerPipelineHandler.self)))
            try operations.addHandler(HopHandler(routes: self.routes, serverName: self.serverName, peer: channel.remoteAddress?.ipAddress))
            try operations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try operations.addHandler(HTTPConnectionStateHandler(idleTimeout: self.http1.configuration.idleTimeout.map { .init($0) }, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await self.http1.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 handled on each connection's event loop (``EventLoopTaskExecutor``), with `hops`
    /// answered in the channel pipeline (``HopHTTP1Channel``).
    public static func http1(hops: HopRoutes, serverName: String?) -> HTTPServerBuilder {
        .init { responder in HopHTTP1Channel(http1: HTTP1Channel(responder: responder), routes: hops, serverName: serverName) }
    }
}
