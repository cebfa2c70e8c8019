import Basics
import Foundation

/// Money in integer minor units of the deployment's one currency (``Basics/Currency``): cents of a
/// shilling or a cedi, whole Uganda francs. Never a floating-point number. `description` shows
/// hundredths (for logs and M-Pesa's shillings); what people read goes through ``Currency/format(_:)``.
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
    /// An amount as staff type it in `currency` (`500`, `1,250.50`): more than zero, with at most
    /// the currency's own decimals whatever `CURRENCY_FRACTIONS` says (a correction may need them),
    /// at most 12 digits of whole units; nil otherwise. The CLI's and the staff desk's reader.
    public init?(typed text: String, in currency: Currency) {
        let exact = Currency(code: currency.code, fractions: true) ?? currency
        guard let minor = exact.parse(typed: text.trimmingCharacters(in: .whitespaces)), minor > 0 else { return nil }
        self.cents = minor
    }

    public static func < (lhs: Amount, rhs: Amount) -> Bool { lhs.cents < rhs.cents }
    public static let zero = Amount(cents: 0)
    public var description: String {
        let magnitude = self.cents.magnitude
        return (self.cents < 0 ? "-" : "") + "\(magnitude / 100).\(String(format: "%02llu", magnitude % 100))"
    }
}
