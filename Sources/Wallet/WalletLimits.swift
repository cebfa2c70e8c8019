import Foundation
import Postgres

/// Per-transaction and daily limits (defaults follow M-Pesa's: 1 to 250,000 KES per transaction,
/// 500,000 KES of sends and withdrawals per Nairobi day).
public struct WalletLimits: Sendable, Hashable {
    public var perTransaction: ClosedRange<Int64> = 100...25_000_000
    public var daily: Int64 = 50_000_000

    public init() {}
}
