import Basics
import Foundation
import Logging
import Postgres

/// Balances: what a customer holds, spends and has on hold, and the ledger-wide figures.
extension Wallet {
    /// A customer's money: posted balances, and what pending withdrawals hold back.
    public struct Balances: Sendable, Hashable {
        public let main: Amount
        public let savings: Amount
        /// Reserved by pending withdrawals; not spendable.
        public let held: Amount
        public var available: Amount { Amount(cents: self.main.cents - self.held.cents) }

        public init(main: Amount, savings: Amount, held: Amount) {
            self.main = main
            self.savings = savings
            self.held = held
        }
    }

    public func balances(_ msisdn: MSISDN) async throws -> Balances {
        try await self.postgres.withConnection { connection in
            guard let balances = try await self.balances(connection, msisdn) else { throw WalletError.notRegistered }
            return balances
        }
    }

    /// A customer's balances as `connection` sees them (inside its transaction, if any); nil when unknown.
    func balances(_ connection: PostgresConnection, _ msisdn: MSISDN) async throws -> Balances? {
        let rows = try await connection.query(
            "SELECT a.kind, a.balance, a.held FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(msisdn.value)"
        )
        guard !rows.isEmpty else { return nil }
        var main = Amount.zero, savings = Amount.zero, held = Amount.zero
        for row in rows {
            let (kind, balance, hold) = try row.decode((String, Int64, Int64).self)
            if kind == "main" {
                main = Amount(cents: balance)
                held = Amount(cents: hold)
            } else {
                savings = Amount(cents: balance)
            }
        }
        return Balances(main: main, savings: savings, held: held)
    }

    /// What an account has sent and withdrawn so far in the current Nairobi day, for the daily
    /// limit (a counter the transfer triggers keep on the account row, migration 0002).
    package func debitsToday(_ connection: PostgresConnection, account: Int64) async throws -> Int64 {
        try await connection.query(
            """
            SELECT CASE WHEN debits_day = (now() AT TIME ZONE 'Africa/Nairobi')::date THEN debits_today ELSE 0 END
            FROM accounts WHERE id = \(account)
            """
        ).single()!.decode(Int64.self, column: 0)
    }

    static func customer(_ row: PostgresRow) throws -> Customer {
        let (id, msisdn, sealedName, language, status, lockedUntil, resetRequired, tier) = try row.decode(
            (Int64, String, Data?, String, String, Date?, Bool, String?).self)
        return Customer(
            id: id, msisdn: MSISDN(msisdn)!, subject: UUID(uuidString: try row.decode(String.self, column: "subject"))!, sealedName: sealedName,
            erasedAt: try row.decode(Date?.self, column: "erased_at"), language: language, status: try Self.status(status),
            lockedUntil: lockedUntil, pinResetRequired: resetRequired, tier: tier,
            pinResetCompletedAt: try row.decode(Date?.self, column: "pin_reset_completed_at")
        )
    }
}
