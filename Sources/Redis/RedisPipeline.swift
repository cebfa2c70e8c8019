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
        let arguments: [[UInt8]]
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
    func send(_ arguments: [[UInt8]], asking: Bool = false) async throws -> RedisValue {
        self.outstanding.add(1, ordering: .relaxed)
        defer { self.outstanding.subtract(1, ordering: .relaxed) }
        return try await self.enqueue(arguments, asking: asking).get()
    }

    /// Queues one command (at once when called on the loop) and returns its reply to come.
    func enqueue(_ arguments: [[UInt8]], asking: Bool = false) -> EventLoopFuture<RedisValue> {
        let promise = self.eventLoop.makePromise(of: RedisValue.self)
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
            channel.write(Request(arguments: arguments, asking: false, promise: promise), promise: nil)
            return promise.futureResult
        }
        channel.flush()
        return EventLoopFuture.andAllSucceed(replies, on: channel.eventLoop).flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }
}

/// RESP out, hiredis' reader in, replies matched to commands in order.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisPipeline.Request
    typealias OutboundOut = ByteBuffer

    private struct Awaiting {
        let promise: EventLoopPromise<RedisValue>
        /// Replies to skip first: ASKING's `+OK`.
        var skip: Int
        let deadline: NIODeadline
    }

    private let timeout: TimeAmount
    /// Given up on (a timeout, a bad reply, closed): no new command is written to it.
    private(set) var isBroken = false
    /// How long the TLS handshake may take once connected; nil without TLS.
    private let handshakeTimeout: TimeAmount?
    /// Completed by the TLS handshake (at once without TLS); nil once completed.
    private var securing: EventLoopPromise<Void>?
    private var handshakeTimer: Scheduled<Void>?
    /// Completes when the connection is ready for commands: the TLS handshake is done.
    private(set) var secured: EventLoopFuture<Void>!
    private var awaiting = CircularBuffer<Awaiting>(initialCapacity: 16)
    private var reader: UnsafeMutablePointer<redisReader>?
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var onIdle: [() -> Void] = []

    private static let asking: [[UInt8]] = [Array("ASKING".utf8)]

    init(timeout: TimeAmount, handshakeTimeout: TimeAmount? = nil) {
        self.timeout = timeout
        self.handshakeTimeout = handshakeTimeout
        self.reader = redisReaderCreate()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if self.handshakeTimeout == nil {
            self.secured = context.eventLoop.makeSucceededVoidFuture()
        } else {
            let securing = context.eventLoop.makePromise(of: Void.self)
            self.securing = securing
            self.secured = securing.futureResult
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.handshakeEnded(.failure(RedisError(code: .connection, detail: "connection closed")))
        self.failAll(RedisError(code: .connection, detail: "connection closed"))
        if let reader = self.reader { redisReaderFree(reader) }
        self.reader = nil
        self.context = nil
    }

    /// Runs `body` once no command awaits a reply.
    func whenIdle(_ body: @escaping () -> Void) {
        if self.awaiting.isEmpty { body() } else { self.onIdle.append(body) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 16 + request.arguments.reduce(0) { $0 + $1.count + 16 })
        if request.asking { Self.encode(Self.asking, into: &buffer) }
        Self.encode(request.arguments, into: &buffer)
        self.awaiting.append(Awaiting(promise: request.promise, skip: request.asking ? 1 : 0, deadline: .now() + self.timeout))
        if self.timer == nil { self.arm(context) }
        context.write(self.wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        guard let reader = self.reader else { return }
        let fed = buffer.withUnsafeReadableBytes { bytes in
            bytes.isEmpty ? REDIS_OK : redisReaderFeed(reader, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard fed == REDIS_OK else { return self.broken(context, RedisError(code: .unexpectedReply, detail: "unreadable reply")) }
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
                return self.broken(context, RedisError(code: .unexpectedReply, detail: "unreadable reply"))
            }
            guard let raw else { break }
            defer { freeReplyObject(raw) }
            guard !self.awaiting.isEmpty else { return self.broken(context, RedisError(code: .unexpectedReply, detail: "a reply nobody asked for")) }
            if self.awaiting[self.awaiting.startIndex].skip > 0 {
                self.awaiting[self.awaiting.startIndex].skip -= 1
                continue
            }
            let head = self.awaiting.removeFirst()
            do {
                head.promise.succeed(try RedisReply.decode(raw.assumingMemoryBound(to: redisReply.self).pointee))
            } catch {
                head.promise.fail(error)
            }
        }
        if self.awaiting.isEmpty {
            self.timer?.cancel()
            self.timer = nil
            let idle = self.onIdle
            self.onIdle = []
            for body in idle { body() }
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        if let handshakeTimeout = self.handshakeTimeout, self.securing != nil {
            self.handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
                guard let context = self.context, self.securing != nil else { return }
                self.broken(context, .tls(.handshakeTimeout, detail: "no TLS handshake within \(handshakeTimeout)"))
            }
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { self.handshakeEnded(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isBroken = true
        let error =
            self.securing != nil
            ? RedisError.tls(.closedDuringHandshake, detail: "connection closed during the TLS handshake")
            : RedisError(code: .connection, detail: "connection closed by the server")
        self.handshakeEnded(.failure(error))
        self.failAll(error)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.broken(context, .channel(error, handshaking: self.securing != nil))
    }

    /// Completes ``secured`` once: the handshake is done, or failed (and so did the connection).
    private func handshakeEnded(_ result: Result<Void, RedisError>) {
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
        guard let securing = self.securing else { return }
        self.securing = nil
        securing.completeWith(result.mapError { $0 as any Error })
    }

    private func broken(_ context: ChannelHandlerContext, _ error: RedisError) {
        self.isBroken = true
        self.handshakeEnded(.failure(error))
        self.failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        self.timer?.cancel()
        self.timer = nil
        while let head = self.awaiting.popFirst() { head.promise.fail(error) }
        let idle = self.onIdle
        self.onIdle = []
        for body in idle { body() }
    }

    /// One timer for the oldest command awaiting a reply.
    private func arm(_ context: ChannelHandlerContext) {
        guard let oldest = self.awaiting.first else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) {
            self.timer = nil
            guard let context = self.context, let oldest = self.awaiting.first else { return }
            if oldest.deadline <= .now() {
                self.broken(context, RedisError(code: .timeout, detail: "no reply within the command timeout"))
            } else {
                self.arm(context)
            }
        }
    }

    private static func encode(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.count))
            buffer.writeStaticString("\r\n")
            buffer.writeBytes(argument)
            buffer.writeStaticString("\r\n")
        }
    }
}
