import CHiredis

/// hiredis' reply objects as ``RedisValue``s, and commands as RESP bytes.
enum RedisReply {
    /// The value of one reply hiredis' reader produced (an error reply throws).
    static func decode(_ reply: redisReply) throws -> RedisValue {
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
}
