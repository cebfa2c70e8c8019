import Foundation

/// Any JSON value, for Safaricom's callbacks: numbers arrive as integers, decimals or strings
/// depending on the field and the API, so nothing is forced through `Double` (an MSISDN as a
/// Double loses no digits today, but a receipt number or a large integer could).
public enum JSONValue: Sendable, Hashable, Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case decimal(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .decimal(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Parses a whole document; nil when it is not JSON.
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    public var string: String? {
        switch self {
        case .string(let text): return text
        case .integer(let number): return String(number)
        default: return nil
        }
    }

    /// An integer, also from a whole decimal (`1.00`) or a string of digits.
    public var integer: Int64? {
        switch self {
        case .integer(let number): return number
        case .decimal(let number): return number.rounded() == number && abs(number) < 9e15 ? Int64(number) : nil
        case .string(let text): return Int64(text)
        default: return nil
        }
    }

    public var array: [JSONValue]? {
        guard case .array(let items) = self else { return nil }
        return items
    }
}
