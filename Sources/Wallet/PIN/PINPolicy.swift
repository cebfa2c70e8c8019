/// Which PINs are refused, and how wrong PINs lock a customer. Pure rules, tested without a database.
public enum PINPolicy {
    /// Wrong PINs in a row that lock the customer.
    public static let attemptsBeforeLock = 3

    /// Four digits, and not one a thief would try first: all the same digit (`0000`, `7777`),
    /// a run up or down (`1234`, `9876`), or a birth-year-like `19xx`/`20xx`.
    public static func isAcceptable(_ pin: String) -> Bool {
        let digits = pin.utf8.map { Int($0) - Int(UInt8(ascii: "0")) }
        guard digits.count == 4, digits.allSatisfy({ (0...9).contains($0) }) else { return false }
        if Set(digits).count == 1 { return false }
        let steps = zip(digits, digits.dropFirst()).map { $1 - $0 }
        if steps.allSatisfy({ $0 == 1 }) || steps.allSatisfy({ $0 == -1 }) { return false }
        if pin.hasPrefix("19") || pin.hasPrefix("20") { return false }
        return true
    }

    /// True when the PIN has the right shape (four digits), weak or not.
    public static func isWellFormed(_ pin: String) -> Bool {
        pin.utf8.count == 4 && pin.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
