import Foundation
import Basics

/// What an input or SMS argument must look like, and how it is normalised once accepted.
public enum Validator: Sendable, Hashable {
    /// Only digits, `minLength...maxLength` of them.
    case digits(minLength: Int, maxLength: Int)
    /// A mobile number of a country the deployment serves (``MSISDN``) in any usual form
    /// (`0712345678`, `712345678`, `+254712345678`, `254712345678`, with spaces or dashes; a local
    /// form is the first country's), normalised to country code and national number.
    case msisdn
    /// From `min` to `max` whole units of the deployment's currency, stored as integer minor units;
    /// fractions are read only when the currency shows them (``Currency/parse(typed:)``).
    case amount(min: Int, max: Int)
    /// Exactly four digits.
    case pin
    /// Free text of 1 to `maxLength` characters; GSM-7 only unless `allowUnicode`.
    case text(maxLength: Int, allowUnicode: Bool)
    /// One of the listed values (compared case-insensitively, stored as listed).
    case oneOf([String])
    /// A whole-input match of a regular expression, with a declared longest length.
    case regex(pattern: String, maxLength: Int)

    /// The normalised value, or nil when `input` is not acceptable; a number must be of a country
    /// `plan` serves, an amount is read in `currency`.
    public func validate(_ input: String, plan: NumberingPlan, currency: Currency) -> String? {
        let trimmed = input.trimmedOfSpaces
        switch self {
        case .digits(let minLength, let maxLength):
            guard (minLength...maxLength).contains(trimmed.count), trimmed.allSatisfy(\.isASCIIDigit) else { return nil }
            return trimmed
        case .msisdn:
            return MSISDN(parsing: trimmed, plan: plan)?.value
        case .amount(let min, let max):
            guard let minor = currency.parse(typed: trimmed), (currency.minor(whole: min)...currency.minor(whole: max)).contains(minor) else { return nil }
            return String(minor)
        case .pin:
            guard trimmed.count == 4, trimmed.allSatisfy(\.isASCIIDigit) else { return nil }
            return trimmed
        case .text(let maxLength, let allowUnicode):
            guard (1...maxLength).contains(trimmed.count), allowUnicode || GSM7.canEncode(trimmed) else { return nil }
            return trimmed
        case .oneOf(let values):
            return values.first { $0.caseInsensitiveCompare(trimmed) == .orderedSame }
        case .regex(let pattern, let maxLength):
            guard trimmed.count <= maxLength, let expression = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return nil }
            let range = NSRange(trimmed.startIndex..., in: trimmed)
            return expression.firstMatch(in: trimmed, range: range) == nil ? nil : trimmed
        }
    }

    /// The longest value it can store in `currency`, in characters (for worst-case page lengths).
    public func maxLength(in currency: Currency) -> Int {
        if case .amount(_, let max) = self { return String(currency.minor(whole: max)).count }
        return self.maxLength
    }

    /// The longest value it can store, in characters; an amount's as hundredths (see ``maxLength(in:)``).
    public var maxLength: Int {
        switch self {
        case .digits(_, let maxLength): return maxLength
        case .msisdn: return 13
        case .amount(_, let max): return String(max * 100).count
        case .pin: return 4
        case .text(let maxLength, _): return maxLength
        case .oneOf(let values): return values.map(\.count).max() ?? 0
        case .regex(_, let maxLength): return maxLength
        }
    }

    /// True when stored values are always GSM-7.
    public var isGSM7: Bool {
        switch self {
        case .text(_, let allowUnicode): return !allowUnicode
        case .oneOf(let values): return values.allSatisfy(GSM7.canEncode)
        case .regex: return false
        default: return true
        }
    }
}

extension Validator: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, minLength, maxLength, length, min, max, values, pattern, allowUnicode
    }

    /// The largest amount a validator may allow, in whole shillings: cents of it, and of any sum of
    /// a few of them, stay far inside Int64.
    public static let maximumShillings = 1_000_000_000
    /// The longest input a validator may allow (a USSD page holds 182 characters).
    public static let maximumLength = 1000

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        // Bounds are checked here, once: a range whose ends are reversed or absurd would trap later.
        func range(_ low: Int, _ high: Int, within limit: ClosedRange<Int>, _ key: CodingKeys) throws -> (Int, Int) {
            guard limit.contains(low), limit.contains(high), low <= high else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container, debugDescription: "must be from \(limit.lowerBound) to \(limit.upperBound), the lower bound first"
                )
            }
            return (low, high)
        }
        switch type {
        case "digits":
            if let length = try container.decodeIfPresent(Int.self, forKey: .length) {
                let (low, high) = try range(length, length, within: 1...Self.maximumLength, .length)
                self = .digits(minLength: low, maxLength: high)
            } else {
                let (low, high) = try range(
                    try container.decodeIfPresent(Int.self, forKey: .minLength) ?? 1, try container.decode(Int.self, forKey: .maxLength),
                    within: 0...Self.maximumLength, .maxLength
                )
                self = .digits(minLength: low, maxLength: high)
            }
        case "msisdn": self = .msisdn
        case "amount":
            let (low, high) = try range(
                try container.decode(Int.self, forKey: .min), try container.decode(Int.self, forKey: .max), within: 0...Self.maximumShillings, .max
            )
            self = .amount(min: low, max: high)
        case "pin": self = .pin
        case "text":
            self = .text(
                maxLength: try range(1, try container.decode(Int.self, forKey: .maxLength), within: 1...Self.maximumLength, .maxLength).1,
                allowUnicode: try container.decodeIfPresent(Bool.self, forKey: .allowUnicode) ?? false
            )
        case "oneOf": self = .oneOf(try container.decode([String].self, forKey: .values))
        case "regex":
            let pattern = try container.decode(String.self, forKey: .pattern)
            guard (try? NSRegularExpression(pattern: pattern)) != nil else {
                throw DecodingError.dataCorruptedError(forKey: .pattern, in: container, debugDescription: "not a valid regular expression")
            }
            self = .regex(pattern: pattern, maxLength: try range(1, try container.decode(Int.self, forKey: .maxLength), within: 1...Self.maximumLength, .maxLength).1)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container,
                debugDescription: "unknown validator \(type) (known: digits, msisdn, amount, pin, text, oneOf, regex)"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .digits(let minLength, let maxLength):
            try container.encode("digits", forKey: .type)
            try container.encode(minLength, forKey: .minLength)
            try container.encode(maxLength, forKey: .maxLength)
        case .msisdn: try container.encode("msisdn", forKey: .type)
        case .amount(let min, let max):
            try container.encode("amount", forKey: .type)
            try container.encode(min, forKey: .min)
            try container.encode(max, forKey: .max)
        case .pin: try container.encode("pin", forKey: .type)
        case .text(let maxLength, let allowUnicode):
            try container.encode("text", forKey: .type)
            try container.encode(maxLength, forKey: .maxLength)
            try container.encode(allowUnicode, forKey: .allowUnicode)
        case .oneOf(let values):
            try container.encode("oneOf", forKey: .type)
            try container.encode(values, forKey: .values)
        case .regex(let pattern, let maxLength):
            try container.encode("regex", forKey: .type)
            try container.encode(pattern, forKey: .pattern)
            try container.encode(maxLength, forKey: .maxLength)
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { self.isASCII && self.isNumber }
}

extension String {
    /// Without leading and trailing spaces and tabs; native, as the engine trims every input.
    var trimmedOfSpaces: String {
        let isSpace = { (c: Character) in c == " " || c == "\t" }
        guard let first = self.firstIndex(where: { !isSpace($0) }), let last = self.lastIndex(where: { !isSpace($0) }) else { return "" }
        if first == self.startIndex && last == self.index(before: self.endIndex) { return self }
        return String(self[first...last])
    }
}
