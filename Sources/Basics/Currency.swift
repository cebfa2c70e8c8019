/// The deployment's currency (`CURRENCY`, ISO 4217) and how people see and type its amounts.
///
/// The ledger keeps integer minor units of this one currency (hundredths of a shilling or a cedi,
/// whole Uganda or Rwanda francs); this is the only place that knows how many there are in a
/// major unit, and ``format(_:)`` is the one formatter of every screen, SMS, desk page and CLI line.
/// Whether people type and see fractions is the deployment's choice (`CURRENCY_FRACTIONS`): off,
/// `KES 1,250` (M-Pesa moves whole shillings); on, `GHS 12.50`.
public struct Currency: Sendable, Hashable, CustomStringConvertible {
    /// The ISO 4217 code: `KES`, `GHS`, `UGX`.
    public let code: String
    /// Digits after the decimal point in the standard's table (its "minor unit"): 2 for KES, 0 for UGX.
    public let minorUnits: Int
    /// Whether amounts are typed and shown with their fractions (`CURRENCY_FRACTIONS=on`).
    public let fractions: Bool

    /// ISO 4217's minor units of the currencies of the markets the gateway serves or may, and of
    /// the few a provider's sandbox insists on (MTN MoMo's takes only EUR).
    public static let table: [String: Int] = [
        "KES": 2, "TZS": 2, "UGX": 0, "RWF": 0, "BIF": 0, "SSP": 2, "ETB": 2, "SOS": 2, "CDF": 2,
        "GHS": 2, "NGN": 2, "XOF": 0, "XAF": 0, "GNF": 0, "SLE": 2, "LRD": 2, "GMD": 2,
        "ZMW": 2, "MWK": 2, "MZN": 2, "ZAR": 2, "BWP": 2, "NAD": 2, "SZL": 2, "LSL": 2,
        "EGP": 2, "MAD": 2, "TND": 3, "USD": 2, "EUR": 2, "GBP": 2,
    ]

    /// The currency of `code` (upper-case ISO 4217, from ``table``); nil for any other.
    public init?(code: String, fractions: Bool = false) {
        guard let minorUnits = Self.table[code] else { return nil }
        self.code = code
        self.minorUnits = minorUnits
        // A currency without minor units has no fractions to show.
        self.fractions = fractions && minorUnits > 0
    }

    /// Kenyan shillings in whole shillings: the gateway's default, and M-Pesa's only currency.
    public static let kenyanShilling = Currency(code: "KES")!

    /// Minor units in one major unit: 100 for KES, 1 for UGX.
    public var perMajor: Int64 {
        var result: Int64 = 1
        for _ in 0..<self.minorUnits { result *= 10 }
        return result
    }

    public var description: String { self.fractions ? "\(self.code) with fractions" : self.code }

    /// Whole major units (menus.json's tariffs, tiers and validators) in minor units, saturating:
    /// lint bounds them, and a file that was never linted still cannot trap the process.
    public func minor(whole: Int) -> Int64 {
        let (value, overflow) = Int64(clamping: whole).multipliedReportingOverflow(by: self.perMajor)
        return overflow ? (whole < 0 ? .min : .max) : value
    }

    /// `125000` minor units of KES as `KES 1,250`, `125050` as `KES 1,250.50`; with fractions on,
    /// `1250` of GHS as `GHS 12.50` and `1200` as `GHS 12.00`.
    public func format(_ minor: Int64) -> String {
        let magnitude = minor.magnitude
        let whole = String(magnitude / UInt64(self.perMajor))
        var grouped = ""
        for (offset, digit) in whole.reversed().enumerated() {
            if offset > 0 && offset % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        var text = self.code + " " + (minor < 0 ? "-" : "") + String(grouped.reversed())
        let remainder = magnitude % UInt64(self.perMajor)
        if self.minorUnits > 0 && (self.fractions || remainder != 0) {
            let digits = String(remainder)
            text += "." + String(repeating: "0", count: self.minorUnits - digits.count) + digits
        }
        return text
    }

    /// The amount a person typed (`500`, `1,250`, and with fractions on `12.50` or `12.5`) in minor
    /// units; nil when it is not a plain amount: no sign, no exponent, at most the currency's
    /// decimals (none when fractions are off), at most 12 digits of whole units.
    public func parse(typed text: String) -> Int64? {
        let plain = text.filter { $0 != "," && $0 != " " }
        let parts = plain.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].count <= 12,
            parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }), let whole = Int64(parts[0])
        else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            guard self.fractions, !parts[1].isEmpty, parts[1].count <= self.minorUnits else { return nil }
            fraction = Int64(parts[1].padding(toLength: self.minorUnits, withPad: "0", startingAt: 0))!
        }
        return whole * self.perMajor + fraction
    }

    /// The longest amount of up to `digits` digits of minor units this currency can show (for
    /// worst-case screen lengths): every digit a nine, grouped, with its fractions.
    public func widest(digits: Int) -> String {
        self.format(Int64(String(repeating: "9", count: min(max(digits, 1), 18)))!)
    }
}
