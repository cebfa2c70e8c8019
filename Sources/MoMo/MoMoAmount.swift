/// Amounts as MoMo carries them: a JSON string of digits with an optional decimal part
/// (`"500"`, `"12.50"`), converted to and from integer minor units. Never through `Double`.
public enum MoMoAmount {
    /// The most digits either side of the point: 10^18 minor units fit an `Int64`.
    static let maximumDigits = 18

    /// `minorUnits` of a currency with `decimals` digits after the point, as MoMo's string:
    /// `1250` with 2 decimals is `"12.50"`, `1200` is `"12"`. Nil for a negative amount or a
    /// `decimals` outside 0...6.
    public static func string(minorUnits: Int64, decimals: Int) -> String? {
        guard minorUnits >= 0, (0...6).contains(decimals) else { return nil }
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let whole = minorUnits / scale, fraction = minorUnits % scale
        guard fraction != 0 else { return String(whole) }
        let digits = String(fraction)
        return String(whole) + "." + String(repeating: "0", count: decimals - digits.count) + digits
    }

    /// The minor units of MoMo's amount `text` in a currency with `decimals` digits after the
    /// point. Strict: ASCII digits, no sign, no exponent, no leading zero (other than `0` itself),
    /// at most one point followed by 1...`decimals` digits; nil for anything else or an overflow.
    public static func minorUnits(_ text: String, decimals: Int) -> Int64? {
        guard (0...6).contains(decimals) else { return nil }
        let parts = text.utf8.split(separator: UInt8(ascii: "."), maxSplits: 2, omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let wholeDigits = parts.first, Self.isDigits(wholeDigits) else { return nil }
        guard wholeDigits.count <= Self.maximumDigits, wholeDigits.count == 1 || wholeDigits.first != UInt8(ascii: "0") else { return nil }
        var fractionDigits: [UInt8] = []
        if parts.count == 2 {
            guard decimals > 0, (1...decimals).contains(parts[1].count), Self.isDigits(parts[1]) else { return nil }
            fractionDigits = Array(parts[1])
        }
        fractionDigits += Array(repeating: UInt8(ascii: "0"), count: decimals - fractionDigits.count)
        var value: Int64 = 0
        for byte in Array(wholeDigits) + fractionDigits {
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    private static func isDigits(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }
}
