import Basics
import CHiredis
import NIOCore
import NIOPosix
import NIOTLS
import Synchronization

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
        var buffer = context.channel.allocator.buffer(capacity: 16 + request.arguments.encodedCapacity)
        if request.asking { Self.encode(Self.asking, into: &buffer) }
        switch request.arguments {
        case .bytes(let arguments): Self.encode(arguments, into: &buffer)
        case .strings(let arguments): Self.encode(strings: arguments, into: &buffer)
        }
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

    /// Text arguments written straight from their UTF-8: no byte array per argument.
    private static func encode(strings arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.utf8.count))
            buffer.writeStaticString("\r\n")
            buffer.writeString(argument)
            buffer.writeStaticString("\r\n")
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
