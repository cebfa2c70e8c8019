import Basics

/// The checks every Daraja callback field goes through before the gateway uses it: the right JSON
/// type, a bounded length, the characters the field can hold. A field of the right type whose value
/// is out of range (an amount of 10^17 shillings, a phone that is not Kenyan) is not malformed: the
/// callback is answered 200 and kept for review.
enum DarajaField {
    /// Printable ASCII without spaces, 1 to `maxLength` characters (Safaricom's ids).
    static func token(_ value: JSONValue?, _ name: String, maxLength: Int = 128) throws(DarajaCallbackMalformed) -> String {
        guard case .string(let text)? = value, (1...maxLength).contains(text.utf8.count), text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw DarajaCallbackMalformed("\(name) missing or malformed")
        }
        return text
    }

    static func optionalToken(_ value: JSONValue?, _ name: String, maxLength: Int = 128) throws(DarajaCallbackMalformed) -> String {
        guard let value, value != .null else { return "" }
        if case .string(let text) = value, text.isEmpty { return "" }
        return try Self.token(value, name, maxLength: maxLength)
    }

    /// A result code: a JSON integer (or a string of digits). Nil when it is a whole number outside
    /// 0 to Int32.max (the database column's range): a well-formed callback with an out-of-range
    /// value, kept for review; malformed when it is not a whole number at all.
    static func resultCode(_ value: JSONValue?) throws(DarajaCallbackMalformed) -> Int? {
        let range = Int64(0)...Int64(Int32.max)
        switch value {
        case .integer(let n)?: return range.contains(n) ? Int(n) : nil
        case .string(let text)? where (1...40).contains(text.utf8.count) && text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }):
            guard let n = Int64(text) else { return nil }
            return range.contains(n) ? Int(n) : nil
        case .decimal(let d)? where d.isFinite && d.rounded() == d:
            return d >= 0 && d <= Double(Int32.max) ? Int(d) : nil
        default: throw DarajaCallbackMalformed("ResultCode missing or not a whole number")
        }
    }

    /// A result code spelt as a code name (`SFC_IC0003`, `R000001`): 2 to 32 capital letters,
    /// digits, `_`, `.` or `-`, starting with a letter and holding a digit. Nil for anything else (a
    /// number is ``resultCode(_:)``'s; a word such as `zero` is malformed).
    static func namedResultCode(_ value: JSONValue?) -> String? {
        guard case .string(let text)? = value, (2...32).contains(text.utf8.count), let first = text.utf8.first, first >= 0x41 && first <= 0x5A else {
            return nil
        }
        let isDigit = { (byte: UInt8) in byte >= 0x30 && byte <= 0x39 }
        guard text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || isDigit($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }), text.utf8.contains(where: isDigit)
        else { return nil }
        return text
    }

    /// An amount as cents: an integer, a decimal or a string of digits with at most two decimals
    /// (`300`, `300.5`, `"300.00"`). Nil when absent, below one cent, above a billion shillings or
    /// not exact; malformed when it is not a number at all. No arithmetic on the raw value can trap.
    static func cents(_ value: JSONValue?, _ name: String) throws(DarajaCallbackMalformed) -> Int64? {
        let limit: Int64 = 100_000_000_000
        switch value {
        case nil, .null?:
            return nil
        case .integer(let number)?:
            guard number > 0, number <= limit / 100 else { return nil }
            return number * 100
        case .decimal(let number)?:
            guard number.isFinite, number > 0, number <= Double(limit / 100) else { return nil }
            let cents = (number * 100).rounded()
            guard abs(cents - number * 100) < 1e-6 else { return nil }
            return Int64(cents)
        case .string(let text)?:
            guard (1...40).contains(text.utf8.count) else { throw DarajaCallbackMalformed("\(name) is not a number") }
            let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            let isDigits = { (part: Substring) in !part.isEmpty && part.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
            guard isDigits(parts[0]), parts.count == 1 || isDigits(parts[1]) else { throw DarajaCallbackMalformed("\(name) is not a number") }
            let whole = parts[0].drop { $0 == "0" }
            guard whole.utf8.count <= 10, let shillings = Int64(whole.isEmpty ? "0" : String(whole)), shillings <= limit / 100 else { return nil }
            var fraction: Int64 = 0
            if parts.count == 2 {
                let digits = parts[1]
                if digits.dropFirst(2).contains(where: { $0 != "0" }) { return nil }
                let two = String(digits.prefix(2)).padding(toLength: 2, withPad: "0", startingAt: 0)
                fraction = Int64(two) ?? 0
            }
            let cents = shillings * 100 + fraction
            return cents > 0 ? cents : nil
        default:
            throw DarajaCallbackMalformed("\(name) is not a number")
        }
    }

    /// The party a `...PartyName` names: the digits it starts with (`600000 - Safaricom`,
    /// `254708374149 - John Doe`), 5 to 15 of them; nil when absent or not so. Malformed when not text.
    static func party(_ value: JSONValue?, _ name: String) throws(DarajaCallbackMalformed) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            let digits = text.utf8.prefix { $0 >= 0x30 && $0 <= 0x39 }
            guard (5...15).contains(digits.count) else { return nil }
            let rest = text.utf8.dropFirst(digits.count)
            // The number ends the digits: `1743790` is not `174379`.
            guard rest.first.map({ !($0 >= 0x30 && $0 <= 0x39) }) ?? true else { return nil }
            return String(decoding: digits, as: UTF8.self)
        case .integer(let number)? where number > 0:
            let text = String(number)
            return (5...15).contains(text.count) ? text : nil
        default:
            throw DarajaCallbackMalformed("\(name) is not text")
        }
    }

    /// Free text (a description): a string, or absent; cut to `maxLength` characters for keeping.
    static func text(_ value: JSONValue?, _ name: String, maxLength: Int = 256) throws(DarajaCallbackMalformed) -> String {
        switch value {
        case nil, .null?: return ""
        case .string(let text)?: return String(text.prefix(maxLength))
        default: throw DarajaCallbackMalformed("\(name) is not text")
        }
    }

    /// A receipt number: 1 to 32 letters and digits.
    static func receipt(_ value: JSONValue?, _ name: String) throws(DarajaCallbackMalformed) -> String {
        guard case .string(let text)? = value, (1...32).contains(text.utf8.count),
            text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) })
        else { throw DarajaCallbackMalformed("\(name) missing or malformed") }
        return text
    }

    /// A phone number as Safaricom sends it: an integer, or a string of up to 15 digits.
    static func phone(_ value: JSONValue?) throws(DarajaCallbackMalformed) -> String {
        switch value {
        case .integer(let number)? where number > 0: return String(number)
        case .string(let text)? where (1...15).contains(text.utf8.count) && text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }): return text
        default: throw DarajaCallbackMalformed("PhoneNumber missing or not a number")
        }
    }

    /// Whole shillings: nil when the value is a number (or a string of one) outside `range` or not
    /// whole; malformed when it is not a number at all. No arithmetic on the raw value can trap.
    static func shillings(_ value: JSONValue?, in range: ClosedRange<Int64>) throws(DarajaCallbackMalformed) -> Int64? {
        switch value {
        case .integer(let number)?:
            return range.contains(number) ? number : nil
        case .decimal(let number)?:
            guard number.isFinite, number.rounded() == number, number >= Double(range.lowerBound), number <= Double(range.upperBound) else { return nil }
            return Int64(number)
        case .string(let text)?:
            // `1`, `1.00`, `-5`, `1e3`: digits with an optional sign and fraction; nothing else.
            guard (1...40).contains(text.utf8.count) else { throw DarajaCallbackMalformed("Amount is not a number") }
            var body = Substring(text)
            let negative = body.first == "-"
            if negative || body.first == "+" { body.removeFirst() }
            let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            let isDigits = { (part: Substring) in !part.isEmpty && part.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
            guard isDigits(parts[0]), parts.count == 1 || isDigits(parts[1]) else { throw DarajaCallbackMalformed("Amount is not a number") }
            if negative || (parts.count == 2 && parts[1].contains(where: { $0 != "0" })) { return nil }
            let whole = parts[0].drop { $0 == "0" }
            guard whole.utf8.count <= 18, let number = Int64(whole.isEmpty ? "0" : String(whole)) else { return nil }
            return range.contains(number) ? number : nil
        default:
            throw DarajaCallbackMalformed("Amount is not a number")
        }
    }

    /// The body, parsed and checked against ``JSONValue/Limits/callbacks``.
    static func document(_ bytes: [UInt8]) throws(DarajaCallbackMalformed) -> JSONValue {
        switch JSONValue.parseChecked(bytes) {
        case .success(let value): return value
        case .failure(let failure): throw DarajaCallbackMalformed(failure.description)
        }
    }

    /// `[{"Name": ..., "Value": ...}, ...]` (or one such object on its own) as name -> value.
    static func items(_ value: JSONValue?, name: String, value valueKey: String, _ field: String) throws(DarajaCallbackMalformed) -> [String: JSONValue] {
        let list: [JSONValue]
        switch value {
        case nil, .null?: return [:]
        case .array(let items)?: list = items
        case .object?: list = [value!]
        default: throw DarajaCallbackMalformed("\(field) is not a list")
        }
        var items: [String: JSONValue] = [:]
        for item in list {
            guard case .object(let members) = item, case .string(let key) = members[name] else { throw DarajaCallbackMalformed("\(field) has an item without \(name)") }
            if let value = members[valueKey], items[key] == nil { items[key] = value }
        }
        return items
    }
}
