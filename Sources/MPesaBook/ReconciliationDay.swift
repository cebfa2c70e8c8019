import Wallet
import Foundation
import Postgres

/// The queries of one day's reconciliation (`Wallet.dailyReport`), inside its read-only,
/// repeatable-read transaction: each figure between the day's bounds as instants (Nairobi's
/// midnight to midnight), so the time columns' indexes serve every query.
struct ReconciliationDay {
    let tx: PostgresConnection
    let start: Date
    let end: Date

    func lines(_ query: PostgresQuery) async throws -> [DailyReport.Line] {
        try await self.tx.query(query).map {
            let (status, count, sum) = try $0.decode((String, Int64, Int64).self)
            return DailyReport.Line(status: status, count: count, sum: sum)
        }
    }

    func figure(_ query: PostgresQuery) async throws -> Int64 { try await self.tx.query(query).single()!.decode(Int64.self, column: 0) }

    func line(_ name: String, _ query: PostgresQuery) async throws -> DailyReport.Line {
        let (count, sum) = try await self.tx.query(query).single()!.decode((Int64, Int64).self)
        return DailyReport.Line(status: name, count: count, sum: sum)
    }

    func depositsByStatus() async throws -> [DailyReport.Line] {
        try await self.lines(
            """
            SELECT status, count(*), coalesce(sum(amount), 0)::bigint FROM deposits
            WHERE created_at >= \(self.start) AND created_at < \(self.end) GROUP BY status ORDER BY status
            """
        )
    }

    func payoutsByStatus() async throws -> [DailyReport.Line] {
        try await self.lines(
            """
            SELECT status, count(*), coalesce(sum(amount), 0)::bigint FROM payouts
            WHERE created_at >= \(self.start) AND created_at < \(self.end) GROUP BY status ORDER BY status
            """
        )
    }

    func depositsCredited() async throws -> DailyReport.Line {
        try await self.line(
            "credited",
            """
            SELECT count(*), coalesce(sum(t.amount), 0)::bigint FROM deposits d JOIN transfers t ON t.id = d.transfer_id
            WHERE d.status = 'completed' AND t.created_at >= \(self.start) AND t.created_at < \(self.end)
            """
        )
    }

    func payoutsPaid() async throws -> DailyReport.Line {
        try await self.line(
            "paid",
            """
            SELECT count(*), coalesce(sum(t.amount), 0)::bigint FROM payouts p JOIN transfers t ON t.id = p.transfer_id
            WHERE p.status = 'paid' AND t.status = 'posted' AND t.resolved_at >= \(self.start) AND t.resolved_at < \(self.end)
            """
        )
    }

    func movementsByKind() async throws -> [DailyReport.Line] {
        try await self.lines(
            """
            SELECT kind, count(*), coalesce(sum(amount), 0)::bigint FROM transfers
            WHERE status = 'posted' AND kind IN ('p2p', 'save', 'unsave', 'fee', 'adjustment', 'reversal')
                AND created_at >= \(self.start) AND created_at < \(self.end)
            GROUP BY kind ORDER BY kind
            """
        )
    }

    /// A system account's net movement that day: posted credits less posted debits, each counted
    /// when it was posted (a hold that became a payment, when it was resolved).
    func movement(_ kind: String) async throws -> Int64 {
        try await self.figure(
            """
            SELECT coalesce(sum(CASE WHEN t.credit_account = a.id THEN t.amount ELSE -t.amount END), 0)::bigint
            FROM accounts a JOIN transfers t ON a.id IN (t.debit_account, t.credit_account)
            WHERE a.customer_id IS NULL AND a.kind = \(kind) AND t.status = 'posted'
                AND coalesce(t.resolved_at, t.created_at) >= \(self.start) AND coalesce(t.resolved_at, t.created_at) < \(self.end)
            """
        )
    }

    /// Fees given back that day (a failed withdrawal's).
    func feesRefunded() async throws -> Int64 {
        try await self.figure(
            """
            SELECT coalesce(sum(t.amount), 0)::bigint FROM transfers t JOIN accounts a ON a.id = t.debit_account
            WHERE a.customer_id IS NULL AND a.kind = 'fee_income' AND t.kind = 'reversal' AND t.status = 'posted'
                AND t.created_at >= \(self.start) AND t.created_at < \(self.end)
            """
        )
    }

    /// Paybill payments Safaricom confirmed that could not be credited (over the limits, or an
    /// account naming nobody): parked from the float in suspense for a person.
    func paybillParked() async throws -> Int64 {
        try await self.figure(
            """
            SELECT coalesce(sum(t.amount), 0)::bigint FROM paybill_payments b JOIN transfers t ON t.id = b.transfer_id
            WHERE b.state = 'suspense' AND t.status = 'posted' AND t.created_at >= \(self.start) AND t.created_at < \(self.end)
            """
        )
    }

    /// Approved corrections that day, signed as they move the suspense account.
    func adjustmentsToSuspense() async throws -> Int64 {
        try await self.figure(
            """
            SELECT coalesce(sum(CASE WHEN r.direction = 'to_suspense' THEN r.amount ELSE -r.amount END), 0)::bigint
            FROM ledger_requests r JOIN transfers t ON t.id = r.transfer_id
            WHERE r.kind = 'adjustment' AND t.created_at >= \(self.start) AND t.created_at < \(self.end)
            """
        )
    }

    /// The float's movements that day that no completed deposit (or parked paybill payment)
    /// explains, by transfer; a general reason when none can be named.
    func unexplainedFloatMovements() async throws -> [String] {
        let reasons = try await self.tx.query(
            """
            SELECT format('transfer %s (%s cents, %s) has no completed deposit', t.id, t.amount, t.kind)
            FROM transfers t JOIN accounts a ON a.id IN (t.debit_account, t.credit_account)
            WHERE a.customer_id IS NULL AND a.kind = 'mpesa_float' AND t.status = 'posted'
                AND coalesce(t.resolved_at, t.created_at) >= \(self.start) AND coalesce(t.resolved_at, t.created_at) < \(self.end)
                AND NOT EXISTS (SELECT 1 FROM deposits d WHERE d.transfer_id = t.id AND d.status = 'completed')
                AND NOT EXISTS (SELECT 1 FROM paybill_payments b WHERE b.transfer_id = t.id AND b.state = 'suspense')
            ORDER BY t.created_at LIMIT 20
            """
        ).map { try $0.decode(String.self, column: 0) }
        return reasons.isEmpty ? ["the float moved by other than deposits credited that day"] : reasons
    }

    /// The in-flight account's movements that day that no paid payout explains, by transfer; a
    /// general reason when none can be named.
    func unexplainedInFlightMovements() async throws -> [String] {
        let reasons = try await self.tx.query(
            """
            SELECT format('transfer %s (%s cents) was posted to in-flight but its payout is %s', t.id, t.amount, coalesce(p.status, 'missing'))
            FROM transfers t JOIN accounts a ON a.id = t.credit_account LEFT JOIN payouts p ON p.transfer_id = t.id
            WHERE a.customer_id IS NULL AND a.kind = 'payouts_in_flight' AND t.status = 'posted'
                AND coalesce(t.resolved_at, t.created_at) >= \(self.start) AND coalesce(t.resolved_at, t.created_at) < \(self.end)
                AND (p.id IS NULL OR p.status <> 'paid')
            ORDER BY t.created_at LIMIT 20
            """
        ).map { try $0.decode(String.self, column: 0) }
        return reasons.isEmpty ? ["the in-flight account moved by other than payouts paid that day"] : reasons
    }
}
