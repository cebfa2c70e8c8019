@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
import Testing

/// The hop server: routes answered in the channel pipeline next to Hummingbird's, on one listener.
@Suite struct HopServerTests {
    /// A hop route that echoes its body and token, a route that answers at once, a slow hop route,
    /// and one Hummingbird route, on one application.
    /// `/slow` answers once the test opens `gate` (after its requests are on the wire): no sleep.
    static func application(token: String? = "secret", gate: Gate = Gate()) -> some ApplicationProtocol {
        let log = RequestLog(logger: Logger(label: "test"))
        let hops = HopRoutes(log: log, metrics: RequestMetrics())
        let guardian = CallbackGuard(token: token, allowed: [], trustedProxies: [])
        hops.add(.post, "/hop", guardian: guardian) { call in
            .text("body=" + String(buffer: call.body) + " query=" + call.query)
        }
        hops.add(.post, "/slow", guardian: guardian) { call in
            await gate.passed()
            return .text("slow")
        }
        hops.add(.post, "/bad", guardian: guardian) { call in
            throw guardian.refuse("a reason", call, route: "bad")
        }
        hops.add(.get, "/now") { _ in .text("now") }
        let router = Router()
        router.get("/framework") { _, _ in "framework" }
        return Application(router: router, server: .http1(hops: hops, serverName: "hop-test"), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    @Test func aHopRouteIsAnsweredWithItsHeadersAndTheFrameworkRouteStillIs() async throws {
        try await Self.application().test(.live) { client in
            let hop = try await client.execute(uri: "/hop/secret?x=1", method: .post, headers: [HTTPField.Name("X-Request-Id")!: "req-7"], body: ByteBuffer(string: "a=b"))
            #expect(hop.status == .ok)
            #expect(String(buffer: hop.body) == "body=a=b query=x=1")
            #expect(hop.headers[.contentType] == "text/plain; charset=utf-8")
            #expect(hop.headers[HTTPField.Name("X-Request-Id")!] == "req-7")
            #expect(hop.headers[.server] == "hop-test" && hop.headers[.date]?.hasSuffix(" GMT") == true)
            let framework = try await client.execute(uri: "/framework", method: .get)
            #expect(String(buffer: framework.body) == "framework")
            let now = try await client.execute(uri: "/now", method: .get)
            #expect(String(buffer: now.body) == "now")
            #expect(try await client.execute(uri: "/hop/wrong", method: .post).status == .notFound, "a wrong token is as if the route did not exist")
            #expect(try await client.execute(uri: "/hop", method: .post).status == .notFound, "so is a missing one")
            #expect(try await client.execute(uri: "/hop/secret", method: .get).status == .notFound, "another method is not the hop route")
            let bad = try await client.execute(uri: "/bad/secret", method: .post)
            #expect(bad.status == .badRequest && String(buffer: bad.body) == "bad request\n")
        }
    }

    @Test func aBodyOverTheLimitIs413AndTheConnectionGoesOn() async throws {
        try await Self.application().test(.live) { client in
            let large = ByteBuffer(repeating: UInt8(ascii: "a"), count: CallbackBody.maximum + 1)
            #expect(try await client.execute(uri: "/hop/secret", method: .post, body: large).status == .contentTooLarge)
            let small = try await client.execute(uri: "/hop/secret", method: .post, body: ByteBuffer(string: "ok"))
            #expect(String(buffer: small.body) == "body=ok query=")
        }
    }

    /// The guard is checked on the head: a wrong token is 404 (and audited) before any body is
    /// kept, even one over the limit; a trailing `/` and an absolute-form URI find the route.
    @Test func theGuardRefusesOnTheHeadAndPathsReadAsTheRouterReadsThem() async throws {
        try await Self.application().test(.live) { client in
            let large = ByteBuffer(repeating: UInt8(ascii: "a"), count: CallbackBody.maximum + 1)
            #expect(try await client.execute(uri: "/hop/wrong", method: .post, body: large).status == .notFound)
            let slash = try await client.execute(uri: "/hop/secret/", method: .post, body: ByteBuffer(string: "s"))
            #expect(String(buffer: slash.body) == "body=s query=")
            let port = try #require(client.port)
            let absolute = try await RawHTTP.exchange(
                port: port, "POST http://127.0.0.1/hop/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\na"
            )
            #expect(absolute.contains("body=a query="), "\(absolute)")
        }
    }

    /// A client that sends its hop and half-closes still gets the answer; after an answer that
    /// closes the connection, a pipelined request is not run.
    @Test func aHalfClosedClientGetsItsAnswerAndNothingRunsAfterAClose() async throws {
        let gate = Gate()
        try await Self.application(gate: gate).test(.live) { client in
            let port = try #require(client.port)
            let slow = try await RawHTTP.exchange(
                port: port, "POST /slow/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", halfClose: true, sent: gate.open
            )
            #expect(slow.contains("\r\n\r\nslow"), "\(slow)")
            let closed = try await RawHTTP.exchange(
                port: port,
                "GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + "POST /hop/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext"
            )
            #expect(closed.contains("\r\n\r\nnow") && !closed.contains("body=next"), "\(closed)")
        }
    }

    /// Requests pipelined on one connection, answered by either server, come back in their order:
    /// a slow hop first, then a framework route, then an immediate one.
    @Test func pipelinedRequestsAreAnsweredInOrderWhicheverServerAnswers() async throws {
        let gate = Gate()
        try await Self.application(gate: gate).test(.live) { client in
            let port = try #require(client.port)
            let requests =
                "POST /slow/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                + "GET /framework HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let answer = try await RawHTTP.exchange(port: port, requests, sent: gate.open)
            let bodies = ["slow", "framework", "now"].map { answer.range(of: "\r\n\r\n" + $0) }
            #expect(bodies.allSatisfy { $0 != nil }, "\(answer)")
            if let slow = bodies[0], let framework = bodies[1], let now = bodies[2] {
                #expect(slow.lowerBound < framework.lowerBound && framework.lowerBound < now.lowerBound, "\(answer)")
            }
            #expect(answer.contains("Connection: close"), "the last request asked to close: \(answer)")
        }
    }
}

/// Writes raw bytes to a local port and reads until the server closes the connection.
enum RawHTTP {
    /// `sent` runs once the bytes are written (and the output closed, with `halfClose`).
    static func exchange(port: Int, _ text: String, halfClose: Bool = false, sent: @Sendable () -> Void = {}) async throws -> String {
        let group = MultiThreadedEventLoopGroup.singleton
        let received = NIOLockedValueBox(ByteBuffer())
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(received: received)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
        if halfClose { try await channel.close(mode: .output).get() }
        sent()
        try await channel.closeFuture.get()
        return received.withLockedValue { String(buffer: $0) }
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<ByteBuffer>
        init(received: NIOLockedValueBox<ByteBuffer>) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = self.unwrapInboundIn(data)
            self.received.withLockedValue { $0.writeBuffer(&buffer) }
        }
        /// The server closed its side: done (with half-closure allowed, NIO would keep the channel open).
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
        }
    }
}

/// Holds a route until the test opens it.
final class Gate: Sendable {
    private let state = NIOLockedValueBox<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func passed() async {
        await withCheckedContinuation { continuation in
            let open = self.state.withLockedValue { state in
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    @Sendable func open() {
        let waiting = self.state.withLockedValue { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
