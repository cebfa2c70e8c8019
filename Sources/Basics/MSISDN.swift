/// A Kenyan mobile number as the gateway stores and sends it: `254` and nine digits, the first of
/// them 7 or 1 (`254712345678`). The only parser of phone numbers in the gateway: a value of this
/// type is valid wherever it goes.
public struct MSISDN: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    /// A number already in the stored form (`254712345678`); nil for anything else.
    public init?(_ normalised: String) {
        let digits = Array(normalised.utf8)
        guard digits.count == 12, normalised.hasPrefix("2547") || normalised.hasPrefix("2541"),
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        self.value = normalised
    }

    /// A number in any usual form a person or a provider writes: `0712345678`, `712345678`,
    /// `254712345678`, `+254712345678`, with spaces, dashes, dots or brackets between the digits.
    public init?(parsing input: String) {
        var digits = Substring(input.filter { !" -().".contains($0) })
        if digits.hasPrefix("+") { digits.removeFirst() }
        guard digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        if digits.hasPrefix("254"), digits.count == 12 {
            digits.removeFirst(3)
        } else if digits.hasPrefix("0"), digits.count == 10 {
            digits.removeFirst()
        } else if digits.count != 9 {
            return nil
        }
        self.init("254" + digits)
    }

    /// `+254712345678`, as Africa's Talking writes numbers.
    public var international: String { "+" + self.value }

    /// `0712345678`, as a Kenyan reads a number.
    public var local: String { "0" + self.value.dropFirst(3) }

    public var description: String { self.value }
}
