/// The fees a movement pays, by kind and amount band (menus.json's `tariffs`, in whole shillings):
/// an amount pays the fee of the first band whose `upTo` it does not exceed. A kind without a
/// tariff is free; an amount above a tariff's last band has no fee and is refused.
public struct Tariff: Sendable, Hashable {
    /// The kinds of movement the wallet charges fees on.
    public static let kinds: Set<String> = ["p2p", "withdrawal"]

    let bands: [String: [MenuDocument.TariffBand]]

    public init(_ bands: [String: [MenuDocument.TariffBand]]) {
        self.bands = bands
    }

    /// The fee in cents for `cents` moved as `kind`; nil when the amount is above the tariff.
    public func fee(_ kind: String, cents: Int64) -> Int64? {
        guard let bands = self.bands[kind] else { return 0 }
        guard let band = bands.first(where: { Self.cents($0.upTo) >= cents }) else { return nil }
        return Self.cents(band.fee)
    }

    /// The largest fee any amount of `kind` pays, in cents (for worst-case screen lengths).
    public func largestFee(_ kind: String) -> Int64 {
        Self.cents(self.bands[kind]?.map(\.fee).max() ?? 0)
    }

    /// Whole shillings from menus.json in cents, saturating: lint bounds them, and a file that
    /// was never linted still cannot trap the process.
    public static func cents(_ shillings: Int) -> Int64 {
        let (cents, overflow) = Int64(clamping: shillings).multipliedReportingOverflow(by: 100)
        return overflow ? (shillings < 0 ? .min : .max) : cents
    }
}

extension MenuDocument {
    public var tariff: Tariff { Tariff(self.tariffs ?? [:]) }
}
