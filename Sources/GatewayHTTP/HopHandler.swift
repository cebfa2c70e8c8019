import Basics
import Dispatch
import GatewayTelemetry
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1
import W3CTraceContext

/// Answers the hop routes of one connection in its channel pipeline; passes every other request on.
///
/// The route's guard is checked on the request's head: a wrong token or source is refused before
/// any of the body is kept. A client that half-closes while its hop runs still gets the answer
/// (the end of its input is passed on after it), and after an answer that closes the connection
/// nothing more is read.
final class HopHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let routes: HopRoutes
    let serverName: String?
    let peer: String?
    private var executor: EventLoopTaskExecutor?
    private var date = HTTPDate()
    /// The end of the client's input, held while a hop is read or answered.
    private var inputClosed = false

    /// A hop request being read: its route, head, body so far, whether the body went over the
    /// limit, and the guard's refusal.
    private struct Reading {
        let route: HopRoutes.Route
        let token: Substring?
        let query: Substring
        let head: HTTPRequestHead
        let requestID: String
        /// The request's trace (its `traceparent`, or a new one): the task answering it runs in it.
        let trace: TraceContext
        let start: ContinuousClock.Instant
        let started: UInt64
        var body: ByteBuffer?
        var tooLarge: Bool
        var refused: Int?
    }

    private enum State {
        case idle
        /// A request for Hummingbird: its parts go on.
        case passing
        case reading(Reading)
        /// A hop request read whole, being answered.
        case answering
        /// An answer that closes the connection was written: nothing more is read.
        case closing
    }

    private var state = State.idle

    init(routes: HopRoutes, serverName: String?, peer: String?) {
        self.routes = routes
        self.serverName = serverName
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        switch (self.state, part) {
        case (.closing, _):
            return
        case (.idle, .head(let head)):
            guard let (route, token, query) = self.routes.match(head.method, head.uri) else {
                self.state = .passing
                return context.fireChannelRead(data)
            }
            let trace = HopTrace.context(traceparent: head.headers.first(name: "traceparent"))
            let requestID = RequestLog.acceptedID(head.headers.first(name: "X-Request-Id")) ?? trace.traceID.description
            var reading = Reading(
                route: route, token: token, query: query, head: head, requestID: requestID, trace: trace, start: .now, started: DispatchTime.now().uptimeNanoseconds,
                body: nil, tooLarge: false, refused: nil
            )
            if let guardian = route.guardian {
                do {
                    try guardian.check(
                        token: token, peer: self.peer, forwardedFor: head.headers["X-Forwarded-For"], route: CallbackGuard.route(pattern: route.pattern),
                        logger: self.requestLogger(requestID)
                    )
                } catch {
                    reading.refused = error.status
                }
            }
            self.state = .reading(reading)
        case (.passing, .end):
            self.state = .idle
            context.fireChannelRead(data)
        case (.passing, _):
            context.fireChannelRead(data)
        case (.reading(var reading), .body(var chunk)):
            if !reading.tooLarge && reading.refused == nil {
                if (reading.body?.readableBytes ?? 0) + chunk.readableBytes > CallbackBody.maximum {
                    (reading.tooLarge, reading.body) = (true, nil)
                } else if reading.body == nil {
                    reading.body = chunk
                } else {
                    reading.body!.writeBuffer(&chunk)
                }
            }
            self.state = .reading(reading)
        case (.reading(let reading), .end):
            self.state = .answering
            self.answer(reading, context: context)
        default:
            // The pipelining handler hands over one request at a time; anything else is a broken peer.
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            switch self.state {
            case .reading, .answering:
                self.inputClosed = true
                return
            default:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func requestLogger(_ requestID: String) -> Logger {
        var logger = self.routes.log.logger
        logger[metadataKey: "request_id"] = .string(requestID)
        return logger
    }

    private func answer(_ reading: Reading, context: ChannelHandlerContext) {
        let method = reading.head.method.rawValue
        let (requestID, routes) = (reading.requestID, self.routes)
        let active = routes.metrics.active(method: method)
        active.increment()
        let finish: (CallbackAnswer, Bool) -> Void = { answer, failed in
            active.decrement()
            routes.metrics.record(routes.metrics.series(route: reading.route.pattern, method: method, status: answer.status), startedAt: reading.started, failed: failed)
            routes.log.log(method: method, route: reading.route.pattern, status: answer.status, since: reading.start, requestID: requestID)
            self.write(answer, requestID: requestID, head: reading.head, context: context)
        }
        if let status = reading.refused {
            return finish(CallbackAnswer(status: status), true)
        }
        if reading.tooLarge {
            routes.log.logger.warning("callback over 64 KiB", metadata: ["route": .string(reading.route.pattern), "request_id": .string(requestID)])
            return finish(CallbackAnswer(status: 413), true)
        }
        let call = CallbackCall(
            route: reading.route.pattern, token: reading.token, query: reading.query, peer: self.peer,
            forwardedFor: reading.head.headers["X-Forwarded-For"], body: reading.body ?? ByteBuffer(), requestID: requestID, logger: routes.log.logger
        )
        let later: @Sendable (CallbackCall) async throws -> CallbackAnswer
        switch reading.route.answer {
        case .now(let answer):
            // On the next tick, not inside this read: the end of this answer releases the next
            // pipelined request, which must not be answered one stack frame deeper each time.
            context.eventLoop.assumeIsolated().execute { finish(answer(call), false) }
            return
        case .later(let answer):
            later = answer
        }
        let executor = self.executor ?? EventLoopTaskExecutor(context.eventLoop)
        self.executor = executor
        // The task runs on this loop (its executor is the loop's), so it answers from there
        // directly: no promise and no callback between the route's answer and the write.
        let loop = context.eventLoop
        let bound = NIOLoopBound(finish, eventLoop: loop)
        let logger = routes.log.logger
        routes.started()
        let trace = reading.trace
        Task(executorPreference: executor) {
            let result: Result<CallbackAnswer, any Error>
            do {
                result = .success(try await HopTrace.$current.withValue(trace) { try await later(call) })
            } catch {
                result = .failure(error)
            }
            let (answer, failed) = HopOutcome.answer(result, requestID: requestID, logger: logger)
            // Counted as running until its answer is written: shutdown waits for the write.
            if loop.inEventLoop {
                bound.value(answer, failed)
                routes.ended()
            } else {
                loop.execute {
                    bound.value(answer, failed)
                    routes.ended()
                }
            }
        }
    }

    /// The answer as one head, one body and the end, flushed once; the connection closed after it
    /// when the request asked. Then the end of the client's input, if it came meanwhile.
    private func write(_ answer: CallbackAnswer, requestID: String, head request: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = request.isKeepAlive
        self.state = keepAlive ? .idle : .closing
        defer {
            if self.inputClosed {
                self.inputClosed = false
                context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
        }
        guard context.channel.isActive else { return }
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)
        var headers = HTTPHeaders()
        headers.reserveCapacity(6 + answer.headers.count)
        if let type = answer.contentType { headers.add(name: "Content-Type", value: type) }
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        headers.add(name: "X-Request-Id", value: requestID)
        headers.add(name: "Date", value: self.date.now())
        if let server = self.serverName { headers.add(name: "Server", value: server) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: answer.status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0 { context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        if keepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// The `Date` header's value (IMF-fixdate), formatted at most once a second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
        var clock = time(nil)
        guard clock != self.second else { return self.text }
        var parts = tm()
        gmtime_r(&clock, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0" + String(value) : String(value) }
        self.text = days[Int(parts.tm_wday)] + ", " + two(parts.tm_mday) + " " + months[Int(parts.tm_mon)] + " " + String(parts.tm_year + 1900) + " "
            + two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec) + " GMT"
        self.second = clock
        return self.text
    }
}

/// How a hop route's outcome becomes its answer.
enum HopOutcome {
    /// What a route's outcome is answered with, and whether it counts as a failure.
    static func answer(_ result: Result<CallbackAnswer, any Error>, requestID: String, logger: Logger) -> (CallbackAnswer, Bool) {
        switch result {
        case .success(let answer):
            return (answer, false)
        case .failure(let error as CallbackRefused):
            return (CallbackAnswer(status: error.status), true)
        case .failure(is BadCallback):
            return (CallbackAnswer(status: 400, contentType: "text/plain; charset=utf-8", body: "bad request\n"), true)
        case .failure(let error):
            logger.error("unhandled error", metadata: ["error": .string(safeDescription(of: error)), "request_id": .string(requestID)])
            return (CallbackAnswer(status: 500, contentType: "text/plain; charset=utf-8", body: "internal error (request id \(requestID))\n"), true)
        }
    }
}
