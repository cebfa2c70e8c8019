import Foundation

/// Money in integer cents (KES). Never a floating-point number.
public struct Amount: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let cents: Int64

    public init(cents: Int64) { self.cents = cents }

    /// Whole shillings as cents; nil where that overflows (checked: a number from outside never traps).
    public init?(shillings: Int64) {
        let (cents, overflow) = shillings.multipliedReportingOverflow(by: 100)
        guard !overflow else { return nil }
        self.cents = cents
    }

    /// For amounts written in code (tests, benchmarks); a number from outside goes through ``init(shillings:)``.
    public static func shillings(_ shillings: Int64) -> Amount {
        guard let amount = Amount(shillings: shillings) else { preconditionFailure("\(shillings) shillings overflow Int64 cents") }
        return amount
    }
    /// An amount in shillings as a person types it (`500`, `1,250.50`): more than zero, at most
    /// two decimals and nine digits of shillings; nil otherwise. The CLI's and the staff desk's reader.
    public init?(typedShillings text: String) {
        let plain = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ",", with: "")
        let parts = plain.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }), parts[0].count <= 9,
            parts.count == 1 || parts[1].count <= 2, let shillings = Int64(parts[0])
        else { return nil }
        let cents = parts.count == 2 ? Int64(parts[1].padding(toLength: 2, withPad: "0", startingAt: 0))! : 0
        guard shillings * 100 + cents > 0 else { return nil }
        self.cents = shillings * 100 + cents
    }

    public static func < (lhs: Amount, rhs: Amount) -> Bool { lhs.cents < rhs.cents }
    public static let zero = Amount(cents: 0)
    public var description: String {
        let magnitude = self.cents.magnitude
        return (self.cents < 0 ? "-" : "") + "\(magnitude / 100).\(String(format: "%02llu", magnitude % 100))"
    }
}
