/// A decoded Redis reply. Error replies are thrown as ``RedisError`` instead.
public enum RedisValue: Sendable, Hashable {
    case null
    /// A simple string such as `OK` or `PONG`.
    case status(String)
    case integer(Int)
    /// A bulk string, binary safe.
    case bulk([UInt8])
    case array([RedisValue])

    /// The reply as text: bulk strings decoded as UTF-8, statuses as they are, integers printed.
    public var string: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        case .integer(let value): return String(value)
        case .null, .array: return nil
        }
    }

    /// The reply as an integer: integer replies, or bulk strings holding a decimal number.
    public var int: Int? {
        switch self {
        case .integer(let value): return value
        case .bulk, .status: return self.string.flatMap { Int($0) }
        case .null, .array: return nil
        }
    }

    public var isNull: Bool { self == .null }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}
