import Basics
import CHiredis
import NIOCore
import NIOPosix
import NIOTLS
import Synchronization

/// One pipelined connection to a Redis server, owned by one NIO event loop.
///
/// Commands are written as RESP the moment they are sent; commands sent in the same loop tick
/// leave in one write. Replies are parsed by hiredis' reader on the loop and complete their callers
/// there: a caller running on that loop (every HTTP request does, see `EventLoopTaskExecutor`)
/// resumes without any thread hand-off.
///
/// - A connection that is not open is made on the first command (the TLS handshake with `rediss://`,
///   then AUTH and SELECT); every command waiting for it fails as not sent when it cannot be made.
/// - A command without a reply within `commandTimeout` fails with `.timeout` and drops the
///   connection (with every other command awaiting a reply on it); the next command connects anew.
/// - A connection the server closed fails the commands awaiting replies on it (`.connection`).
final class RedisPipeline: Sendable {
    let eventLoop: any EventLoop
    private let configuration: RedisConfiguration
    /// The client's TLS context, nil for plain TCP.
    private let tls: RedisTLS?
    private let state: State
    private let outstanding = Atomic<Int>(0)

    /// A command on its way: its argv, whether `ASKING` goes just before it (a Redis Cluster slot
    /// in migration answered `ASK`), and who waits for the reply.
    struct Request: Sendable {
        let arguments: RedisArguments
        let asking: Bool
        let promise: EventLoopPromise<RedisValue>
    }

    /// Touched only on `eventLoop`.
    private final class State: @unchecked Sendable {
        var channel: (any Channel)?
        /// The current connection's handler: a connection it gave up on (a timeout, a bad reply) is
        /// not written to while it closes, which over TLS takes a round trip with `isActive` still true.
        var handler: RedisChannelHandler?
        var connecting = false
        var waiting: [Request] = []
        var stopped = false
        /// Connections written to since the last flush.
        var unflushed: [any Channel] = []
    }

    init(configuration: RedisConfiguration, eventLoop: any EventLoop, tls: RedisTLS? = nil) {
        self.configuration = configuration
        self.tls = tls
        self.eventLoop = eventLoop
        self.state = State()
    }

    /// Commands queued or awaiting their reply; the node sends to the least busy pipeline.
    var load: Int { self.outstanding.load(ordering: .relaxed) }

    /// Connects now rather than with the first command (no second connection while one is being made).
    func start() {
        self.onLoop { if self.state.channel == nil && !self.state.connecting && !self.state.stopped { self.connect() } }
    }

    /// Sends one command and waits for its reply.
    func send(_ arguments: RedisArguments, asking: Bool = false) async throws -> RedisValue {
        self.outstanding.add(1, ordering: .relaxed)
        defer { self.outstanding.subtract(1, ordering: .relaxed) }
        return try await self.enqueue(arguments, asking: asking).get()
    }

    /// Queues one command (at once when called on the loop) and returns its reply to come.
    func enqueue(_ arguments: RedisArguments, asking: Bool = false) -> EventLoopFuture<RedisValue> {
        let promise = self.eventLoop.makePromise(of: RedisValue.self)
        return self.submitting(arguments, asking: asking, promise)
    }

    /// ``enqueue(_:asking:)`` for a caller that does not wait on it: counted in ``load`` until its reply.
    func enqueueCounted(_ arguments: RedisArguments) -> EventLoopFuture<RedisValue> {
        self.outstanding.add(1, ordering: .relaxed)
        let reply = self.enqueue(arguments)
        reply.whenComplete { _ in self.outstanding.subtract(1, ordering: .relaxed) }
        return reply
    }

    private func submitting(_ arguments: RedisArguments, asking: Bool, _ promise: EventLoopPromise<RedisValue>) -> EventLoopFuture<RedisValue> {
        let request = Request(arguments: arguments, asking: asking, promise: promise)
        self.onLoop { self.submit(request) }
        return promise.futureResult
    }

    /// Closes the connection once the commands sent so far have their replies.
    func stop() async {
        let closed = self.eventLoop.makePromise(of: Void.self)
        self.onLoop {
            let state = self.state
            state.stopped = true
            for request in state.waiting { request.promise.fail(RedisError(code: .connection, detail: "client shut down")) }
            state.waiting = []
            guard let channel = state.channel else { return closed.succeed() }
            state.channel = nil
            channel.pipeline.handler(type: RedisChannelHandler.self).whenComplete { result in
                guard case .success(let handler) = result else { return channel.close(promise: closed) }
                handler.whenIdle { channel.close(promise: closed) }
            }
        }
        try? await closed.futureResult.get()
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if self.eventLoop.inEventLoop { body() } else { self.eventLoop.execute(body) }
    }

    private func submit(_ request: Request) {
        let state = self.state
        if state.stopped {
            request.promise.fail(RedisError(code: .connection, detail: "client shut down"))
        } else if let channel = state.channel, channel.isActive, state.handler?.isBroken != true {
            self.write(request, on: channel)
        } else {
            state.channel = nil
            state.handler = nil
            state.waiting.append(request)
            if !state.connecting { self.connect() }
        }
    }

    /// Writes now, flushes once at the end of this loop tick: commands sent together share a write.
    /// Every connection written to is flushed, whichever is current by then.
    private func write(_ request: Request, on channel: any Channel) {
        let state = self.state
        channel.write(request, promise: nil)
        guard !state.unflushed.contains(where: { $0 === channel }) else { return }
        state.unflushed.append(channel)
        guard state.unflushed.count == 1 else { return }
        self.eventLoop.execute {
            let channels = self.state.unflushed
            self.state.unflushed = []
            for channel in channels { channel.flush() }
        }
    }

    private func connect() {
        let state = self.state
        if case .failure(var unusable) = self.tls?.context {
            // No TLS context (an unreadable CA file): no connection could be made; say why at once.
            unusable.notSent = true
            let waiting = state.waiting
            state.waiting = []
            for request in waiting { request.promise.fail(unusable) }
            return
        }
        state.connecting = true
        let configuration = self.configuration
        let timeout = TimeAmount.microseconds(configuration.commandTimeout.inMicroseconds)
        let connectTimeout = TimeAmount.microseconds(configuration.connectTimeout.inMicroseconds)
        let tls = self.tls
        ClientBootstrap(group: self.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = channel.pipeline.syncOperations
                    if let tls { try handlers.addHandler(tls.handler(host: configuration.host)) }
                    try handlers.addHandler(RedisChannelHandler(timeout: timeout, handshakeTimeout: tls == nil ? nil : connectTimeout))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .flatMap { channel in self.secured(channel).flatMap { _ in self.handshake(channel) }.map { _ in channel } }
            .whenComplete { result in
                let state = self.state
                state.connecting = false
                let waiting = state.waiting
                state.waiting = []
                switch result {
                case .success(let channel):
                    if state.stopped {
                        channel.close(promise: nil)
                        for request in waiting { request.promise.fail(RedisError(code: .connection, detail: "client shut down")) }
                        return
                    }
                    state.channel = channel
                    state.handler = try? channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self)
                    for request in waiting { self.write(request, on: channel) }
                case .failure(let error):
                    var unsent = RedisError.channel(error, handshaking: tls != nil)
                    unsent.notSent = true
                    for request in waiting { request.promise.fail(unsent) }
                }
            }
    }

    /// The TLS handshake done (at once without TLS); on failure the connection is closed.
    private func secured(_ channel: any Channel) -> EventLoopFuture<Void> {
        let handshake: EventLoopFuture<Void>
        do {
            handshake = try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self).secured
        } catch {
            handshake = channel.eventLoop.makeFailedFuture(RedisError(code: .connection, detail: "connection closed before it was ready"))
        }
        return handshake.flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    /// AUTH and SELECT, when configured, before any caller's command.
    private func handshake(_ channel: any Channel) -> EventLoopFuture<Void> {
        var commands: [[[UInt8]]] = []
        if let password = self.configuration.password, !password.isEmpty {
            var auth = [Array("AUTH".utf8)]
            if let user = self.configuration.username { auth.append(Array(user.utf8)) }
            auth.append(Array(password.utf8))
            commands.append(auth)
        }
        if self.configuration.database != 0 {
            commands.append([Array("SELECT".utf8), Array(String(self.configuration.database).utf8)])
        }
        guard !commands.isEmpty else { return channel.eventLoop.makeSucceededVoidFuture() }
        let replies = commands.map { arguments in
            let promise = channel.eventLoop.makePromise(of: RedisValue.self)
            channel.write(Request(arguments: .bytes(arguments), asking: false, promise: promise), promise: nil)
            return promise.futureResult
        }
        channel.flush()
        return EventLoopFuture.andAllSucceed(replies, on: channel.eventLoop).flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }
}
