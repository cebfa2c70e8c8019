import Basics

/// What every text of a deployment says the same way: its currency (`CURRENCY`) and the name of
/// its mobile-money rail (`MOBILE_MONEY`). Templates read them as `{currency}` and `{mobileMoney}`,
/// so menus.json names neither, and `{…|amount}` shows amounts in the currency.
public struct Market: Sendable, Hashable {
    public var currency: Currency
    /// The rail as customers call it: `M-Pesa`, `MoMo`.
    public var mobileMoney: String

    public init(currency: Currency, mobileMoney: String) {
        self.currency = currency
        self.mobileMoney = mobileMoney
    }

    /// Kenya: whole shillings and M-Pesa (the default).
    public static let kenya = Market(currency: .kenyanShilling, mobileMoney: "M-Pesa")

    /// The variables every template may read and no value may override.
    public static let constantNames: Set<String> = ["currency", "mobileMoney"]

    /// The value of a constant variable; nil for any other name.
    public func constant(_ name: String) -> String? {
        switch name {
        case "currency": return self.currency.code
        case "mobileMoney": return self.mobileMoney
        default: return nil
        }
    }
}
