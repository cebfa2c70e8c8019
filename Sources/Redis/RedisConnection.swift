import Basics
import CHiredis
import Foundation

/// One hiredis connection. Owns the `redisContext*` and frees every reply it reads; nothing else
/// touches the C pointers. Used only by the I/O thread of its ``RedisPipeline``.
final class RedisConnection {
    private let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    deinit { self.close() }

    func close() {
        if let context = self.context { redisFree(context) }
        self.context = nil
    }

    /// A command to write: its argv, and whether `ASKING` goes just before it (a Redis Cluster
    /// slot in migration answered `ASK`: the next command on this connection may use the slot).
    struct Outgoing {
        var arguments: [[UInt8]]
        var asking = false
    }

    /// Sends one command as argv (never a format string) and decodes its reply.
    func execute(_ arguments: [[UInt8]]) throws -> RedisValue {
        try self.executeBatch([Outgoing(arguments: arguments)])[0].get()
    }

    private static let asking: [[UInt8]] = [Array("ASKING".utf8)]

    /// Writes every command, then reads every reply in order: one round trip for the batch.
    ///
    /// A connection that broke while idle (server restarted) is replaced before writing, so the
    /// first batch after a restart succeeds. When no connection can be made, every command fails
    /// as not sent (a cluster client may send it elsewhere). An I/O failure or timeout drops the
    /// connection and fails the commands whose replies were not read; a server error reply fails
    /// only its command.
    func executeBatch(_ commands: [Outgoing]) -> [Result<RedisValue, RedisError>] {
        let context: UnsafeMutablePointer<redisContext>
        do {
            context = try self.connectedContext()
        } catch {
            var unsent = error
            unsent.notSent = true
            return commands.map { _ in .failure(unsent) }
        }
        for command in commands {
            for arguments in command.asking ? [Self.asking, command.arguments] : [command.arguments] {
                let status = Self.withArgv(arguments) { argc, argv, lengths in
                    redisAppendCommandArgv(context, argc, argv, lengths)
                }
                guard status == REDIS_OK else {
                    let error = Self.connectionError(context)
                    self.close()
                    return commands.map { _ in .failure(error) }
                }
            }
        }
        var results: [Result<RedisValue, RedisError>] = []
        results.reserveCapacity(commands.count)
        for command in commands {
            var result: Result<RedisValue, RedisError>?
            // After ASKING its reply (+OK) is read and dropped; the command's own reply follows.
            for _ in 0..<(command.asking ? 2 : 1) {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                    let error = Self.connectionError(context)
                    self.close()
                    while results.count < commands.count { results.append(.failure(error)) }
                    return results
                }
                defer { freeReplyObject(raw) }
                do {
                    result = .success(try Self.decode(raw.assumingMemoryBound(to: redisReply.self).pointee))
                } catch let error as RedisError {
                    result = .failure(error)
                } catch {
                    result = .failure(RedisError(code: .unexpectedReply, detail: "\(error)"))
                }
            }
            results.append(result!)
        }
        return results
    }

    private func connectedContext() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context = self.context {
            if context.pointee.err == 0, chiredis_peer_closed(context.pointee.fd) == 0 {
                return context
            }
            self.close()
        }
        guard let context = redisConnectWithTimeout(self.configuration.host, Int32(self.configuration.port), Self.timeval(self.configuration.connectTimeout)) else {
            throw RedisError(code: .connection, detail: "could not allocate a redis context")
        }
        if context.pointee.err != 0 {
            let error = Self.connectionError(context)
            redisFree(context)
            throw error
        }
        redisSetTimeout(context, Self.timeval(self.configuration.commandTimeout))
        self.context = context
        do {
            if let password = self.configuration.password, !password.isEmpty {
                var auth = [Array("AUTH".utf8)]
                if let user = self.configuration.username { auth.append(Array(user.utf8)) }
                auth.append(Array(password.utf8))
                _ = try self.execute(auth)
            }
            if self.configuration.database != 0 {
                _ = try self.execute([Array("SELECT".utf8), Array(String(self.configuration.database).utf8)])
            }
        } catch let error as RedisError {
            self.close()
            throw error
        } catch {
            self.close()
            throw RedisError(code: .connection, detail: "\(error)")
        }
        return context
    }

    private static func connectionError(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let message = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let timedOut = context.pointee.err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || message.contains("temporarily unavailable"))
        return RedisError(code: timedOut ? .timeout : .connection, detail: message.isEmpty ? "error \(context.pointee.err)" : message)
    }

    private static func decode(_ reply: redisReply) throws -> RedisValue {
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulk(Self.bytes(reply))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: Self.bytes(reply), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(reply.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ERROR:
            throw RedisError.server(String(decoding: Self.bytes(reply), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var values: [RedisValue] = []
            values.reserveCapacity(reply.elements)
            for index in 0..<reply.elements {
                guard let element = reply.element[index] else { values.append(.null); continue }
                values.append(try Self.decode(element.pointee))
            }
            return .array(values)
        default:
            throw RedisError(code: .unexpectedReply, detail: "reply type \(reply.type)")
        }
    }

    private static func bytes(_ reply: redisReply) -> [UInt8] {
        guard let str = reply.str, reply.len > 0 else { return [] }
        return str.withMemoryRebound(to: UInt8.self, capacity: reply.len) { Array(UnsafeBufferPointer(start: $0, count: reply.len)) }
    }

    /// Lays the arguments out as the C argv hiredis wants, valid only inside `body`.
    private static func withArgv<R>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let total = arguments.reduce(0) { $0 + $1.count }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: max(total, 1)) { storage in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: arguments.count) { argv in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: arguments.count) { lengths in
                    var offset = 0
                    for (index, argument) in arguments.enumerated() {
                        let start = storage.baseAddress! + offset
                        argument.withUnsafeBytes { bytes in
                            if !bytes.isEmpty { UnsafeMutableRawPointer(start).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
                        }
                        argv[index] = UnsafePointer(start)
                        lengths[index] = argument.count
                        offset += argument.count
                    }
                    return body(Int32(arguments.count), argv.baseAddress!, UnsafePointer(lengths.baseAddress!))
                }
            }
        }
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        let micros = duration.inMicroseconds
        return Foundation.timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
