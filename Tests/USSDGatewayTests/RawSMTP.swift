import NIOCore
import NIOPosix
import Testing

/// A test's raw TCP conversation with an SMTP server: bytes out exactly as written (garbage
/// included), replies read back whole (up to the line `NNN text`), and whether the server hung up.
struct RawSMTP {
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var pending: [UInt8] = []
    /// The server closed the connection.
    private(set) var closed = false

    /// Connects to 127.0.0.1:`port`, runs `body`, closes.
    static func talk<T: Sendable>(port: Int, _ body: (inout RawSMTP) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        return try await channel.executeThenClose { inbound, outbound in
            var smtp = RawSMTP(outbound: outbound, inbound: inbound.makeAsyncIterator())
            return try await body(&smtp)
        }
    }

    /// Whether something listens on 127.0.0.1:`port` and greets with 220.
    static func greets(port: Int) async -> Bool {
        (try? await Self.talk(port: port) { smtp in try await smtp.reply()?.hasPrefix("220") == true }) ?? false
    }

    func send(_ text: String) async throws { try await self.send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) async throws {
        try await self.outbound.write(ByteBuffer(bytes: bytes))
    }

    /// The next whole reply (every line of a multi-line one), or nil once the server has hung up.
    /// (The tests that call it carry a time limit: a server that never answers fails them.)
    mutating func reply() async throws -> String? {
        var lines: [String] = []
        while true {
            if let newline = self.pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: self.pending[..<newline], as: UTF8.self).trimmingSuffix("\r")
                self.pending.removeFirst(newline + 1)
                lines.append(line)
                // `250-...` continues; `250 ...` ends the reply.
                if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { return lines.joined(separator: "\n") }
                continue
            }
            guard !self.closed else { return lines.isEmpty ? nil : lines.joined(separator: "\n") }
            guard let buffer = try await self.inbound.next() else {
                self.closed = true
                continue
            }
            self.pending += buffer.readableBytesView
        }
    }

    /// Sends `command` and returns the reply.
    mutating func say(_ command: String) async throws -> String? {
        try await self.send(command + "\r\n")
        return try await self.reply()
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String { self.hasSuffix(suffix) ? String(self.dropLast(suffix.count)) : self }
}
