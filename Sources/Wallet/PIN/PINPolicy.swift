/// Which PINs are refused, and how wrong PINs lock a customer. Pure rules, tested without a database.
public enum PINPolicy {
    /// Wrong PINs in a row that lock the customer.
    public static let attemptsBeforeLock = 3

    /// How long the `lockNumber`-th lock in a row lasts (1-based): the configured first lock
    /// (`PIN_LOCK_MINUTES`), then a day, then until an operator unlocks (nil). A right PIN starts
    /// the count again.
    public static func lockDuration(lockNumber: Int, first: Duration) -> Duration? {
        switch lockNumber {
        case ...1: return first
        case 2: return .seconds(24 * 3600)
        default: return nil
        }
    }

    /// Lines on a phone's keypad, either way: what a thief tries after the runs and repeats.
    static let keypadLines: Set<String> = [
        "2580", "0852", "1470", "0741", "3690", "0963", "7410", "0147", "9630", "0369", "1590", "0951", "3570", "0753", "7530", "9510",
    ]

    /// Four digits, and not one a thief would try first: the same digit four times (`7777`), two
    /// pairs (`1212`, `1122`), a run up or down (`1234`, `9876`, `8901`), a line on the keypad
    /// (`2580`, `1470`), a year from 1900 to 2029, or the last four digits of the customer's own
    /// number (`msisdn`, when given).
    public static func isAcceptable(_ pin: String, msisdn: String? = nil) -> Bool {
        let digits = pin.utf8.map { Int($0) - Int(UInt8(ascii: "0")) }
        guard digits.count == 4, digits.allSatisfy({ (0...9).contains($0) }) else { return false }
        let (a, b, c, d) = (digits[0], digits[1], digits[2], digits[3])
        if a == b && b == c && c == d { return false }
        if (a == c && b == d) || (a == b && c == d) { return false }
        let steps = zip(digits, digits.dropFirst()).map { ($1 - $0 + 10) % 10 }
        if steps.allSatisfy({ $0 == 1 }) || steps.allSatisfy({ $0 == 9 }) { return false }
        if Self.keypadLines.contains(pin) { return false }
        let year = a * 1000 + b * 100 + c * 10 + d
        if (1900...2029).contains(year) { return false }
        if let msisdn, msisdn.utf8.count >= 4, msisdn.hasSuffix(pin) { return false }
        return true
    }

    /// True when the PIN has the right shape (four digits), weak or not.
    public static func isWellFormed(_ pin: String) -> Bool {
        pin.utf8.count == 4 && pin.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
