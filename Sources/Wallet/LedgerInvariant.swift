import Foundation
import Postgres

/// One invariant the ledger audit (`Wallet.auditLedger`) checks: a query that returns a line for
/// each row breaking it, and what passing means. The table below is the audit, in its order.
struct LedgerInvariant: Sendable {
    let name: String
    let query: PostgresQuery
    let passing: String

    init(_ name: String, _ query: PostgresQuery, passing: String) {
        self.name = name
        self.query = query
        self.passing = passing
    }

    static let all: [LedgerInvariant] = [
        LedgerInvariant(
            "no customer balance is negative",
            """
            SELECT format('account %s (%s of %s): balance %s, held %s', a.id, a.kind, c.msisdn, a.balance, a.held)
            FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.balance < 0 OR a.balance - a.held < 0 ORDER BY a.id
            """,
            passing: "every customer account holds at least what it has on hold"
        ),
        LedgerInvariant(
            "balances are what the transfers make them",
            """
            WITH moved AS (
                SELECT account, sum(delta)::bigint AS delta FROM (
                    SELECT credit_account AS account, amount AS delta FROM transfers WHERE status = 'posted'
                    UNION ALL SELECT debit_account, -amount FROM transfers WHERE status = 'posted') m
                GROUP BY account)
            SELECT format('account %s (%s): balance %s, transfers say %s', b.id, b.kind, b.balance, coalesce(m.delta, 0))
            FROM account_balances b LEFT JOIN moved m ON m.account = b.id WHERE b.balance <> coalesce(m.delta, 0) ORDER BY b.id
            """,
            passing: "every balance equals its posted credits less its posted debits"
        ),
        LedgerInvariant(
            "holds are what the pending transfers make them",
            """
            SELECT format('account %s (%s): held %s, pending transfers say %s', a.id, a.kind, a.held, coalesce(p.total, 0))
            FROM accounts a LEFT JOIN (SELECT debit_account, sum(amount)::bigint AS total FROM transfers WHERE status = 'pending' GROUP BY debit_account) p
                ON p.debit_account = a.id
            WHERE a.held <> coalesce(p.total, 0) ORDER BY a.id
            """,
            passing: "every hold equals its account's pending transfers"
        ),
        LedgerInvariant(
            "every hold belongs to a live payout",
            """
            SELECT format('pending transfer %s (%s cents): %s', t.id, t.amount,
                          CASE WHEN p.id IS NULL THEN 'no payout' ELSE 'its payout ' || p.id || ' is ' || p.status END)
            FROM transfers t LEFT JOIN payouts p ON p.transfer_id = t.id
            WHERE t.status = 'pending' AND (p.id IS NULL OR p.status NOT IN ('reserved', 'sent', 'unknown', 'needs_review')) ORDER BY t.created_at
            """,
            passing: "every pending transfer is a payout in flight"
        ),
        // Provenance: each transfer names its cause, and the cause exists. A row written by hand
        // (not through a wallet function) has none, whatever it claims (migration 0014).
        LedgerInvariant(
            "every transfer names its cause",
            """
            SELECT format('transfer %s (%s, %s cents, %s): %s', t.id, t.kind, t.amount, t.created_at,
                          CASE WHEN t.cause IS NULL THEN 'names no cause: not made by the wallet (inserted by hand?)'
                               ELSE 'its cause ' || t.cause || ' does not exist' END)
            FROM transfers t
            WHERE t.cause IS NULL
               OR NOT CASE split_part(t.cause, ':', 1)
                    WHEN 'movement' THEN t.cause = 'movement:' || t.id OR (t.kind = 'fee' AND t.cause = 'movement:' || (t.metadata->>'for'))
                    WHEN 'deposit' THEN EXISTS (SELECT 1 FROM deposits d WHERE d.transfer_id = t.id AND 'deposit:' || d.id = t.cause)
                    WHEN 'payout' THEN EXISTS (SELECT 1 FROM payouts p WHERE p.id = substr(t.cause, 8)
                                               AND t.id IN (p.transfer_id, p.transfer_id || ':fee', p.transfer_id || ':fee-refund'))
                    WHEN 'request' THEN EXISTS (SELECT 1 FROM ledger_requests r WHERE r.transfer_id = t.id AND 'request:' || r.id = t.cause
                                                AND r.status = 'approved')
                    WHEN 'c2b' THEN EXISTS (SELECT 1 FROM paybill_payments b WHERE b.trans_id = substr(t.cause, 5)
                                            AND (b.transfer_id = t.id OR EXISTS (SELECT 1 FROM deposits d WHERE d.id = b.deposit_id AND d.transfer_id = t.id)))
                    ELSE false END
            ORDER BY t.created_at LIMIT 100
            """,
            passing: "every transfer was made by the wallet for a movement, deposit, payout, paybill payment or approved request"
        ),
    ]

    /// No payout holds money longer than `age`.
    static func noHoldOlder(than age: Duration) -> LedgerInvariant {
        let seconds = Double(age.components.seconds)
        return LedgerInvariant(
            "no hold older than \((seconds / 3600).formatted()) h",
            """
            SELECT format('payout %s of %s: %s cents held since %s (%s)', p.id, p.msisdn, t.amount, t.created_at, p.status)
            FROM transfers t JOIN payouts p ON p.transfer_id = t.id
            WHERE t.status = 'pending' AND t.created_at < now() - make_interval(secs => \(seconds)) ORDER BY t.created_at
            """,
            passing: "no payout has held money longer than that"
        )
    }
}
