import Foundation
import Postgres

/// The ledger's outer per-transaction and daily limits, in minor units of the deployment's
/// currency: 100 to 25,000,000 per movement and 50,000,000 of sends and withdrawals a day (in
/// shillings M-Pesa's own, 1 to 250,000 and 500,000; in Uganda francs 100 to 25 million). The KYC
/// tiers of menus.json, written in the currency's whole units, are the limits people meet.
public struct WalletLimits: Sendable, Hashable {
    public var perTransaction: ClosedRange<Int64> = 100...25_000_000
    public var daily: Int64 = 50_000_000

    public init() {}
}
