import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A small SMTP server inside a development gateway, on loopback only, that keeps what it is sent
/// in a ``SandboxMailbox`` instead of sending it on: `report daily --email` on a fresh clone goes
/// through the real libcurl client, over a real socket, and lands at `GET /sandbox/mail`.
///
/// SwiftNIO reads lines (``SMTPLineDecoder``, each bounded) and ``SMTPSession`` decides every reply.
/// Connections are bounded (``maximumConnections``; more are told 421 and closed), and one quiet
/// for ``idleTimeout`` is closed, a message left without its terminator dropped with it. When the
/// port is taken the sandbox logs it and goes on without mail: the rest of the gateway serves.
public final class SandboxMailServer: Service, Sendable {
    public let mailbox: SandboxMailbox
    public let host = "127.0.0.1"
    let port: Int
    let limits: SMTPSession.Limits
    let idleTimeout: TimeAmount
    let maximumConnections: Int
    let logger: Logger
    private let listening = Mutex<(port: Int?, waiting: [CheckedContinuation<Int?, Never>], done: Bool)>((nil, [], false))
    let connections = Atomic<Int>(0)

    /// `port` 0 takes a free one (``boundPort()`` says which).
    public init(
        port: Int, mailbox: SandboxMailbox, limits: SMTPSession.Limits = .init(), idleTimeout: Duration = .seconds(60), maximumConnections: Int = 16,
        logger: Logger
    ) {
        self.port = port
        self.mailbox = mailbox
        self.limits = limits
        self.idleTimeout = TimeAmount(idleTimeout)
        self.maximumConnections = maximumConnections
        self.logger = logger
    }

    /// Listens until graceful shutdown.
    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 16)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            IdleStateHandler(readTimeout: self.idleTimeout), ByteToMessageHandler(SMTPLineDecoder(maximumLineBytes: self.limits.maximumLineBytes)),
                            SMTPServerHandler(server: self)
                        )
                    }
                }
                .bind(host: self.host, port: self.port).get()
        } catch {
            self.logger.warning(
                "sandbox mail server not listening: report mail sent to it fails until the port is free",
                metadata: ["port": .stringConvertible(self.port), "error": .string(String(describing: error))]
            )
            self.announce(nil)
            try? await gracefulShutdown()
            return
        }
        let port = channel.localAddress?.port ?? self.port
        self.announce(port)
        self.logger.notice("report mail: sandbox. SMTP on \(self.host):\(port) keeps what it is sent (GET /sandbox/mail)")
        try? await gracefulShutdown()
        try? await channel.close()
    }

    /// The port it listens on, once it does; nil when it could not.
    public func boundPort() async -> Int? {
        await withCheckedContinuation { continuation in
            let known = self.listening.withLock { state -> (Bool, Int?) in
                if state.done { return (true, state.port) }
                state.waiting.append(continuation)
                return (false, nil)
            }
            if known.0 { continuation.resume(returning: known.1) }
        }
    }

    private func announce(_ port: Int?) {
        let waiting = self.listening.withLock { state in
            (state.port, state.done) = (port, true)
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume(returning: port) }
    }

    func kept(_ message: SandboxMailbox.Message) {
        self.logger.info(
            "sandbox mail kept",
            metadata: ["sequence": .stringConvertible(message.sequence), "recipients": .stringConvertible(message.envelopeTo.count), "bytes": .stringConvertible(message.size)]
        )
    }
}

/// Splits the stream into lines at LF, noting whether each ended CRLF; a line over the limit is
/// dropped (up to its end, however far) and reported once as ``SMTPSession/Line/overlong``.
struct SMTPLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPSession.Line
    let maximumLineBytes: Int
    private var discarding = false

    init(maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > self.maximumLineBytes {
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                if !self.discarding { context.fireChannelRead(self.wrapInboundOut(.overlong)) }
                self.discarding = true
            }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        var bytes = buffer.readBytes(length: length) ?? []
        buffer.moveReaderIndex(forwardBy: 1)
        if self.discarding {
            self.discarding = false
            return .continue
        }
        let crlf = bytes.last == UInt8(ascii: "\r")
        if crlf { bytes.removeLast() }
        let line: SMTPSession.Line = bytes.count + 2 > self.maximumLineBytes ? .overlong : .text(bytes, crlf: crlf)
        context.fireChannelRead(self.wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // What is left without a line end is never a command or a terminator: dropped.
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }
}

/// One connection: the greeting, each line through its ``SMTPSession``, each message kept.
final class SMTPServerHandler: ChannelInboundHandler {
    typealias InboundIn = SMTPSession.Line
    typealias OutboundOut = ByteBuffer
    let server: SandboxMailServer
    private var session: SMTPSession
    private var counted = false
    private var closing = false

    init(server: SandboxMailServer) {
        self.server = server
        self.session = SMTPSession(limits: server.limits)
    }

    func channelActive(context: ChannelHandlerContext) {
        let open = self.server.connections.add(1, ordering: .relaxed).newValue
        self.counted = true
        guard open <= self.server.maximumConnections else {
            return self.send(["421 4.3.2 Too many connections, try again later"], close: true, context: context)
        }
        self.send([SMTPSession.greeting], close: false, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.counted { self.server.connections.subtract(1, ordering: .relaxed) }
        self.counted = false
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else { return }
        let output = self.session.receive(self.unwrapInboundIn(data))
        if let envelope = output.message { self.server.kept(self.server.mailbox.keep(envelope)) }
        if !output.replies.isEmpty || output.close { self.send(output.replies, close: output.close, context: context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read else { return context.fireUserInboundEventTriggered(event) }
        self.send(["421 4.4.2 Idle too long, closing"], close: true, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func send(_ replies: [String], close: Bool, context: ChannelHandlerContext) {
        guard !self.closing else { return }
        var buffer = context.channel.allocator.buffer(capacity: 128)
        for reply in replies { buffer.writeString(reply + "\r\n") }
        let written = context.writeAndFlush(self.wrapOutboundOut(buffer))
        guard close else { return }
        self.closing = true
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.whenComplete { _ in bound.value.close(promise: nil) }
    }
}
