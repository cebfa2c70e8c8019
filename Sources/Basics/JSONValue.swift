import Foundation

/// Any JSON value, the gateway's one way to read and write JSON on the wire and in the database
/// (our own typed documents use Codable). Safaricom's numbers arrive as integers, decimals or strings
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

    /// Limits a callback body must keep before anything of it is used or stored.
    public struct Limits: Sendable {
        /// Deepest nesting of arrays and objects (Safaricom's bodies are five deep).
        public var depth = 16
        /// Longest string or key, in UTF-8 bytes.
        public var stringBytes = 2048
        public static let callbacks = Limits()
    }

    /// Parses a document a provider sent and checks it against `limits`: nesting no deeper than
    /// allowed (checked on the bytes, before a recursive decoder sees them), and no string or key
    /// that is too long or holds a control character (NUL included; Postgres refuses `\u0000` in
    /// JSON, and no provider field needs one). Returns why not, safe to log.
    public static func parseChecked(_ bytes: [UInt8], limits: Limits = .callbacks) -> Result<JSONValue, ParseFailure> {
        guard Self.nestingDepth(bytes) <= limits.depth else { return .failure(ParseFailure(description: "body nests deeper than \(limits.depth)")) }
        guard let value = Self.parse(bytes) else { return .failure(ParseFailure(description: "body is not JSON")) }
        if let problem = value.firstProblem(limits) { return .failure(ParseFailure(description: problem)) }
        return .success(value)
    }

    /// Why a body was not taken; never holds a value from it.
    public struct ParseFailure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The deepest nesting of `[` and `{` outside strings (an unbalanced body is left to the parser).
    public static func nestingDepth(_ bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    private func firstProblem(_ limits: Limits) -> String? {
        func check(_ text: String) -> String? {
            if text.utf8.count > limits.stringBytes { return "a string longer than \(limits.stringBytes) bytes" }
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) { return "a control character in a string" }
            return nil
        }
        switch self {
        case .string(let text): return check(text)
        case .array(let items):
            for item in items { if let problem = item.firstProblem(limits) { return problem } }
            return nil
        case .object(let members):
            for (key, value) in members {
                if let problem = check(key) ?? value.firstProblem(limits) { return problem }
            }
            return nil
        default: return nil
        }
    }

    /// The value as JSON text with sorted keys: what the gateway stores of a callback. Written from
    /// the parsed value, not copied from the request, so the database only ever gets JSON it
    /// accepts (no byte-order mark, duplicate key or escape that its parser reads otherwise).
    public var serialized: String {
        var output = ""
        self.write(to: &output)
        return output
    }

    private func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .integer(let number): output += String(number)
        case .decimal(let number): output += number.isFinite ? "\(number)" : "null"
        case .string(let text): Self.writeString(text, to: &output)
        case .array(let items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                item.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { output += "," }
                Self.writeString(key, to: &output)
                output += ":"
                members[key]!.write(to: &output)
            }
            output += "}"
        }
    }

    private static func writeString(_ text: String, to output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
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
        case .string(let text): return text.utf8.count <= 19 ? Int64(text) : nil
        default: return nil
        }
    }

    public var array: [JSONValue]? {
        guard case .array(let items) = self else { return nil }
        return items
    }
}
