import CHiredis
import ConnectionPool
import Foundation

/// One hiredis connection. Owns the `redisContext*` and frees every reply it reads; nothing else
/// touches the C pointers. Used on pool threads only, one call at a time (see ``ConnectionPool``).
final class RedisConnection: PoolableConnection {
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

    /// Sends one command as argv (never a format string) and decodes its reply.
    ///
    /// A connection that broke while idle (server restarted) is replaced before sending, so the
    /// first call after a restart succeeds; a failure during the command drops the connection.
    func execute(_ arguments: [[UInt8]]) throws -> RedisValue {
        let context = try self.connectedContext()
        let raw = Self.withArgv(arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let raw else {
            let error = Self.connectionError(context)
            self.close()
            throw error
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return try Self.decode(reply.pointee)
    }

    private func connectedContext() throws -> UnsafeMutablePointer<redisContext> {
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
        } catch {
            self.close()
            throw error
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
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        return Foundation.timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
