import Basics
import Foundation

/// Reading Account Balance's `ResultParameters` (docs/reference/daraja.md): the accounts of the
/// shortcode asked about, and when M-Pesa read them.
public enum AccountBalance {
    /// One account: `Utility Account|KES|8959269.60|...`, the amount in cents.
    public struct Account: Sendable, Hashable {
        public let name: String
        public let currency: String
        public let cents: Int64
    }

    /// `AccountBalance`: accounts separated by `&`, each `Name|Currency|Amount|...`
    /// (`Working Account|KES|46713.00|46713.00|0.00|0.00&Utility Account|KES|...`). At most 16
    /// accounts, names of letters, digits and spaces, amounts in whole units with up to two
    /// decimals; anything else is malformed (400, nothing kept).
    public static func accounts(_ value: JSONValue?) throws(DarajaCallbackMalformed) -> [Account] {
        guard case .string(let text)? = value, (1...4096).contains(text.utf8.count) else { throw DarajaCallbackMalformed("AccountBalance missing") }
        let entries = text.split(separator: "&", omittingEmptySubsequences: true)
        guard (1...16).contains(entries.count) else { throw DarajaCallbackMalformed("AccountBalance malformed") }
        var accounts: [Account] = []
        var names = Set<String>()
        for entry in entries {
            let fields = entry.split(separator: "|", omittingEmptySubsequences: false)
            guard fields.count >= 3 else { throw DarajaCallbackMalformed("AccountBalance malformed") }
            let name = String(fields[0]).trimmingCharacters(in: .whitespaces)
            let currency = String(fields[1])
            guard (1...64).contains(name.utf8.count), name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == " ") }),
                currency.utf8.count == 3, currency.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) }),
                let cents = Self.cents(fields[2])
            else { throw DarajaCallbackMalformed("AccountBalance malformed") }
            // One reading per account: a name twice is not an answer to keep.
            guard names.insert(name).inserted else { throw DarajaCallbackMalformed("AccountBalance names an account twice") }
            accounts.append(Account(name: name, currency: currency, cents: cents))
        }
        return accounts
    }

    /// `8959269.60` as cents; at most 13 digits before the point and 2 after, an optional minus.
    static func cents(_ text: Substring) -> Int64? {
        var rest = text
        let negative = rest.first == "-"
        if negative { rest = rest.dropFirst() }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), (1...13).contains(parts[0].count), parts[0].allSatisfy(\.isASCIINumber),
            let whole = Int64(parts[0])
        else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            guard (1...2).contains(parts[1].count), parts[1].allSatisfy(\.isASCIINumber), let digits = Int64(parts[1]) else { return nil }
            fraction = parts[1].count == 1 ? digits * 10 : digits
        }
        let cents = whole * 100 + fraction
        return negative ? -cents : cents
    }

    /// `BOCompletedTime`, `yyyyMMddHHmmss` in Nairobi time (a number or a string).
    public static func completedTime(_ value: JSONValue?) -> Date? {
        let text: String
        switch value {
        case .integer(let number)?: text = String(number)
        case .string(let string)?: text = string
        default: return nil
        }
        let digits = text.utf8.map { Int($0) - 48 }
        guard digits.count == 14, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + $1 } }
        var components = DateComponents()
        (components.year, components.month, components.day) = (number(0..<4), number(4..<6), number(6..<8))
        (components.hour, components.minute, components.second) = (number(8..<10), number(10..<12), number(12..<14))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 3 * 3600)!
        // A date that does not read back as written (month 13, 30 February) is none: Calendar
        // would roll it over.
        guard let date = calendar.date(from: components),
            calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date) == components
        else { return nil }
        return date
    }
}

extension Character {
    fileprivate var isASCIINumber: Bool { self.isASCII && self.isNumber }
}
