import Basics

/// The fees a movement pays, by kind and amount band (menus.json's `tariffs`, in whole units of the
/// deployment's currency):
/// an amount pays the fee of the first band whose `upTo` it does not exceed. A kind without a
/// tariff is free; an amount above a tariff's last band has no fee and is refused.
public struct Tariff: Sendable, Hashable {
    /// The kinds of movement the wallet charges fees on.
    public static let kinds: Set<String> = ["p2p", "withdrawal"]

    let bands: [String: [MenuDocument.TariffBand]]
    let currency: Currency

    public init(_ bands: [String: [MenuDocument.TariffBand]], currency: Currency = .kenyanShilling) {
        self.bands = bands
        self.currency = currency
    }

    /// The fee in minor units for `cents` (minor units) moved as `kind`; nil when the amount is above the tariff.
    public func fee(_ kind: String, cents: Int64) -> Int64? {
        guard let bands = self.bands[kind] else { return 0 }
        guard let band = bands.first(where: { self.currency.minor(whole: $0.upTo) >= cents }) else { return nil }
        return self.currency.minor(whole: band.fee)
    }

    /// The largest fee any amount of `kind` pays, in minor units (for worst-case screen lengths).
    public func largestFee(_ kind: String) -> Int64 {
        self.currency.minor(whole: self.bands[kind]?.map(\.fee).max() ?? 0)
    }
}

extension MenuDocument {
    /// The file's tariffs in `currency`.
    public func tariff(in currency: Currency) -> Tariff { Tariff(self.tariffs ?? [:], currency: currency) }
}
