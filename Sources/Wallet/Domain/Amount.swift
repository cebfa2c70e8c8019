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
    public static func < (lhs: Amount, rhs: Amount) -> Bool { lhs.cents < rhs.cents }
    public static let zero = Amount(cents: 0)
    public var description: String {
        let magnitude = self.cents.magnitude
        return (self.cents < 0 ? "-" : "") + "\(magnitude / 100).\(String(format: "%02llu", magnitude % 100))"
    }
}
