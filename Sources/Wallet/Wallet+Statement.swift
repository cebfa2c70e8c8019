import Basics
import Foundation
import Postgres

/// A customer's recent movements, as the statement screen and SMS show them.
extension Wallet {
    /// The last `limit` posted or pending movements of a customer's main and savings accounts.
    public func statement(_ msisdn: MSISDN, limit: Int = 5) async throws -> [StatementEntry] {
        let customer = try await self.customer(msisdn)
        let rows = try await self.postgres.query(
            """
            SELECT t.id, t.kind, t.amount, t.created_at, da.customer_id = \(customer.id) AND da.kind = 'main' AS outgoing,
                   CASE WHEN t.kind = 'p2p' THEN (SELECT c.msisdn FROM customers c WHERE c.id =
                       CASE WHEN da.customer_id = \(customer.id) THEN ca.customer_id ELSE da.customer_id END) END
            FROM transfers t
            JOIN accounts da ON da.id = t.debit_account
            JOIN accounts ca ON ca.id = t.credit_account
            WHERE (da.customer_id = \(customer.id) OR ca.customer_id = \(customer.id)) AND t.status <> 'voided'
            ORDER BY t.created_at DESC, t.id DESC
            LIMIT \(limit)
            """
        )
        return try rows.map { row in
            let (key, kind, cents, at, outgoing, counterparty) = try row.decode((String, String, Int64, Date, Bool, String?).self)
            return StatementEntry(
                key: key, kind: kind, direction: outgoing ? .outgoing : .incoming, amount: Amount(cents: cents),
                counterparty: counterparty.flatMap { MSISDN($0) }, at: at
            )
        }
    }
}
