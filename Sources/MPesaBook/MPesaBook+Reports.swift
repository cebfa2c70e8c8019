import Basics
import Foundation
import Postgres
import Wallet

/// One day's reconciliation (Africa/Nairobi), all amounts in cents.
public struct DailyReport: Sendable, Hashable, Codable {
    public struct Line: Sendable, Hashable, Codable {
        public let status: String
        public let count: Int64
        public let sum: Int64
    }

    /// What one side says against the ledger's movement, and why they differ when they do.
    public struct Comparison: Sendable, Hashable, Codable {
        public let name: String
        public let reported: Int64
        public let ledger: Int64
        public var difference: Int64 { self.ledger - self.reported }
        public let reasons: [String]
    }

    public let date: String
    /// STK deposits started that day, by status now.
    public let deposits: [Line]
    /// Payouts started that day, by status now.
    public let payouts: [Line]
    /// Deposits credited that day (their transfer's time).
    public let depositsCredited: Line
    /// Payouts settled as paid that day (their hold's resolution time).
    public let payoutsPaid: Line
    /// Movements between customers that day: sends, savings, fees, corrections, reversals.
    public let movements: [Line]
    /// Fees charged less fees given back with failed withdrawals.
    public let feesEarned: Int64
    /// The float, in-flight and fee-income accounts' net movement that day, from the transfers.
    public let floatMovement: Int64
    public let inFlightMovement: Int64
    public let feeIncomeMovement: Int64
    public let suspenseMovement: Int64
    public let comparisons: [Comparison]
    public let openReviewItems: Int64
    public let reviewItemsReceived: Int64
    /// The ledger's currency (its claim, migration 0024): every amount above is in its minor units.
    public var currencyCode = "KES"
    public var balanced: Bool { self.comparisons.allSatisfy { $0.difference == 0 } }
}

/// The day's reconciliation of M-Pesa's records against the ledger, and the review queue's decisions.
extension MPesaBook {
    // MARK: Daily reconciliation

    /// The reconciliation of one Nairobi day (`YYYY-MM-DD`): deposits and payouts by status,
    /// what was credited and paid set against the float and in-flight accounts' movements, fees
    /// earned, corrections, open review items, and each difference with its reason.
    public func dailyReport(date: String) async throws -> DailyReport {
        guard date.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil else {
            throw WalletError.invalidArgument("the date must be YYYY-MM-DD")
        }
        return try await self.postgres.transaction { tx in
            try await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            let valid: Bool
            do {
                valid = try await tx.query("SELECT to_char(\(date)::date, 'YYYY-MM-DD') = \(date)").single()!.decode(Bool.self, column: 0)
            } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                valid = false
            }
            guard valid else { throw WalletError.invalidArgument("no such date \(date)") }
            // The day's bounds as instants, so the time columns' indexes serve every query below.
            let (start, end) = try await tx.query(
                """
                SELECT \(date)::date::timestamp AT TIME ZONE 'Africa/Nairobi', (\(date)::date + 1)::timestamp AT TIME ZONE 'Africa/Nairobi'
                """
            ).single()!.decode((Date, Date).self)
            let day = ReconciliationDay(tx: tx, start: start, end: end)
            let (deposits, payouts, credited, paid, movements) = try await (
                day.depositsByStatus(), day.payoutsByStatus(), day.depositsCredited(), day.payoutsPaid(), day.movementsByKind()
            )
            let float = try await day.movement("mpesa_float")
            let inFlight = try await day.movement("payouts_in_flight")
            let feeIncome = try await day.movement("fee_income")
            let suspense = try await day.movement("suspense")
            // Fees charged less fees given back (a failed withdrawal's).
            let fees = (movements.first { $0.status == "fee" }?.sum ?? 0) - (try await day.feesRefunded())
            let parked = try await day.paybillParked()
            let adjustments = try await day.adjustmentsToSuspense()
            let comparisons: [DailyReport.Comparison] = [
                // Deposits: every credit leaves the float; a float movement no deposit explains is named.
                .init(
                    name: "deposits credited or parked in suspense / float out", reported: credited.sum + parked, ledger: -float,
                    reasons: -float == credited.sum + parked ? [] : try await day.unexplainedFloatMovements()
                ),
                .init(
                    name: "payouts paid / in-flight in", reported: paid.sum, ledger: inFlight,
                    reasons: inFlight == paid.sum ? [] : try await day.unexplainedInFlightMovements()
                ),
                .init(
                    name: "fees earned / fee income", reported: fees, ledger: feeIncome,
                    reasons: fees == feeIncome ? [] : ["the fee-income account moved by other than fees charged that day"]
                ),
                .init(
                    name: "approved corrections and parked paybill payments / suspense", reported: adjustments + parked, ledger: suspense,
                    reasons: adjustments + parked == suspense
                        ? [] : ["the suspense account moved by other than approved corrections and parked paybill payments that day"]
                ),
            ]
            let open = try await day.figure("SELECT count(*) FROM mpesa_review WHERE resolution IS NULL")
            let received = try await day.figure("SELECT count(*) FROM mpesa_review WHERE received_at >= \(start) AND received_at < \(end)")
            var report = DailyReport(
                date: date, deposits: deposits, payouts: payouts, depositsCredited: credited, payoutsPaid: paid, movements: movements,
                feesEarned: fees, floatMovement: float, inFlightMovement: inFlight, feeIncomeMovement: feeIncome, suspenseMovement: suspense,
                comparisons: comparisons, openReviewItems: open, reviewItemsReceived: received
            )
            if let code = try await self.postgres.query("SELECT code FROM ledger_currency").single()?.decode(String.self, column: 0) { report.currencyCode = code }
            return report
        }
    }

    // MARK: M-Pesa review

    /// Closes a review item once, after a credit, a refund, or nothing; written to the audit trail
    /// in the same transaction. False when there is no such open item.
    public func resolveReviewItem(_ id: Int64, resolution: String, note: String, by action: OperatorAction) async throws -> Bool {
        guard ["credited", "refunded", "nothing"].contains(resolution) else {
            throw WalletError.invalidArgument("the outcome is credited, refunded or nothing")
        }
        return try await self.postgres.transaction { tx in
            guard
                let row = try await tx.query(
                    """
                    UPDATE mpesa_review SET resolution = \(resolution), resolved_by = current_user, resolved_at = now(), resolution_note = \(note)
                    WHERE id = \(id) AND resolution IS NULL
                    RETURNING kind, reference, reason, (SELECT c.msisdn FROM deposits d JOIN customers c ON c.id = d.customer_id WHERE d.id = deposit_id),
                        (SELECT c.msisdn FROM payouts p JOIN customers c ON c.id = p.customer_id WHERE p.id = payout_id)
                    """
                ).single()
            else { return false }
            let (kind, reference, reason, depositor, payee) = try row.decode((String, String, String, String?, String?).self)
            try await Wallet.audit(
                tx, actor: nil, "mpesa.review_resolved", msisdn: depositor ?? payee, reason: action.reason,
                before: ["item": String(id), "kind": kind, "reference": reference, "reason": reason, "status": "open"],
                after: ["item": String(id), "resolution": resolution, "note": note]
            )
            return true
        }
    }
}

extension MPesaBook {
    /// What M-Pesa's records add to the ledger audit: deposits (STK), payouts (B2C) and paybill
    /// payments (C2B) as the causes of transfers, payouts as the owners of holds, and the review
    /// queue's open items.
    public static let provenance = LedgerProvenance(
        causes: [
            .init(kind: "deposit", exists: "EXISTS (SELECT 1 FROM deposits d WHERE d.transfer_id = t.id AND 'deposit:' || d.id = t.cause)"),
            .init(
                kind: "payout",
                exists: """
                    EXISTS (SELECT 1 FROM payouts p WHERE p.id = substr(t.cause, 8)
                            AND t.id IN (p.transfer_id, p.transfer_id || ':fee', p.transfer_id || ':fee-refund'))
                    """
            ),
            .init(
                kind: "c2b",
                exists: """
                    EXISTS (SELECT 1 FROM paybill_payments b WHERE b.trans_id = substr(t.cause, 5)
                            AND (b.transfer_id = t.id OR EXISTS (SELECT 1 FROM deposits d WHERE d.id = b.deposit_id AND d.transfer_id = t.id)))
                    """
            ),
        ],
        holds: [
            .init(
                owned: "EXISTS (SELECT 1 FROM payouts p WHERE p.transfer_id = t.id AND p.status IN ('reserved', 'sent', 'unknown', 'needs_review'))",
                described: "(SELECT 'payout ' || p.id || ' of ' || left(p.msisdn, 4) || '***' || right(p.msisdn, 3) || ' (' || p.status || ')' FROM payouts p WHERE p.transfer_id = t.id ORDER BY p.created_at DESC LIMIT 1)"
            )
        ],
        waiting: [.init(count: "SELECT count(*) FROM mpesa_review WHERE resolution IS NULL", note: "M-Pesa review item(s) open (mpesa review)")]
    )

    /// The ledger audit with M-Pesa's records: what `ledger audit` runs.
    public func auditLedger(maxHoldAge: Duration = .seconds(48 * 3600)) async throws -> LedgerAudit {
        try await self.wallet.auditLedger(maxHoldAge: maxHoldAge, providers: [Self.provenance])
    }
}
