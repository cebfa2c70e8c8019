import Foundation

extension Wallet {
    /// After a customer sets the PIN an approved reset asked for, sends and withdrawals (fees
    /// included) beyond `limit` in all are refused for `window` (balance, deposits and smaller
    /// amounts work), as banks do after a SIM swap: whoever took the number over cannot empty the
    /// wallet at once.
    public struct PINResetCooldown: Sendable, Hashable {
        public var window: Duration
        public var limit: Amount

        public init(window: Duration = .seconds(24 * 3600), limit: Amount = Amount(cents: 100_000)) {
            self.window = window
            self.limit = limit
        }
    }

    /// The amount above which sends and withdrawals wait out a PIN reset's cooling-off window.
    public var coolingOffLimit: Amount { self.pinResetCooldown.limit }

    /// Refuses a send or withdrawal of `amount` by `customer` while a PIN reset's cooling-off
    /// window runs and it would take what they sent and withdrew since the new PIN past the limit
    /// (so the window cannot be drained in small amounts): ``WalletError/coolingOff(until:)``.
    public func checkCoolingOff(_ customer: Customer, amount: Amount) async throws {
        guard let completed = customer.pinResetCompletedAt else { return }
        let until = completed.addingTimeInterval(TimeInterval(self.pinResetCooldown.window.components.seconds))
        guard self.now() < until else { return }
        guard amount.cents <= self.pinResetCooldown.limit.cents else { throw WalletError.coolingOff(until: until) }
        let spent = try await self.postgres.query(
            """
            SELECT coalesce(sum(t.amount), 0)::bigint FROM transfers t JOIN accounts a ON a.id = t.debit_account
            WHERE a.customer_id = \(customer.id) AND a.kind = 'main' AND t.kind IN ('p2p', 'withdrawal', 'fee') AND t.status <> 'voided'
                AND t.created_at >= \(completed)
            """
        ).single()!.decode(Int64.self, column: 0)
        if spent + amount.cents > self.pinResetCooldown.limit.cents { throw WalletError.coolingOff(until: until) }
    }
}
