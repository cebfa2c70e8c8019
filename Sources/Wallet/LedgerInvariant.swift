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

    /// The invariants of the ledger alone.
    static let ledger: [LedgerInvariant] = [
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
    ]

    /// SQL true when any of `conditions` is.
    static func any(_ conditions: [String]) -> String {
        conditions.isEmpty ? "false" : conditions.map { "(\($0))" }.joined(separator: " OR ")
    }

    /// SQL for the first of `expressions` that is not NULL, else `fallback`.
    static func firstOf(_ expressions: [String], else fallback: String) -> String {
        "coalesce(" + (expressions + [fallback]).joined(separator: ", ") + ")"
    }

    /// The invariants that need the providers' records: every hold is owned by a live record of
    /// one of them, and every transfer names a cause that exists.
    static func provenance(_ providers: [LedgerProvenance]) -> [LedgerInvariant] {
        let owned = Self.any(providers.flatMap { $0.holds.map(\.owned) })
        let described = Self.firstOf(providers.flatMap { $0.holds.map(\.described) }, else: "'no payout'")
        let causes = providers.flatMap(\.causes).map { "WHEN '\($0.kind)' THEN \($0.exists)" }.joined(separator: "\n")
        let kinds = (["movement"] + providers.flatMap { $0.causes.map(\.kind) } + ["request"]).joined(separator: ", ")
        return [
            LedgerInvariant(
                "every hold belongs to a live payout",
                """
                SELECT format('pending transfer %s (%s cents): %s', t.id, t.amount, \(unescaped: described))
                FROM transfers t WHERE t.status = 'pending' AND NOT (\(unescaped: owned)) ORDER BY t.created_at
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
                        WHEN 'request' THEN EXISTS (SELECT 1 FROM ledger_requests r WHERE r.transfer_id = t.id AND 'request:' || r.id = t.cause
                                                    AND r.status = 'approved')
                        \(unescaped: causes)
                        ELSE false END
                ORDER BY t.created_at LIMIT 100
                """,
                passing: "every transfer was made by the wallet for one of its causes: \(kinds)"
            ),
        ]
    }

    /// No hold older than `age`, each named by what holds it.
    static func noHoldOlder(than age: Duration, _ providers: [LedgerProvenance]) -> LedgerInvariant {
        let seconds = Double(age.components.seconds)
        let described = Self.firstOf(providers.flatMap { $0.holds.map(\.described) }, else: "'pending transfer ' || t.id")
        return LedgerInvariant(
            "no hold older than \((seconds / 3600).formatted()) h",
            """
            SELECT format('%s: %s cents held since %s', \(unescaped: described), t.amount, t.created_at)
            FROM transfers t WHERE t.status = 'pending' AND t.created_at < now() - make_interval(secs => \(seconds)) ORDER BY t.created_at
            """,
            passing: "no payout has held money longer than that"
        )
    }
}

/// What a provider's records add to the ledger audit, so that the ledger itself names no provider:
/// the causes its transfers name, the holds its records own, and what waits for a person.
public struct LedgerProvenance: Sendable {
    /// A cause kind (`deposit` in `deposit:42`) and the SQL condition, on the transfer `t`, that holds
    /// when the cause it names exists and made that transfer.
    public struct Cause: Sendable {
        public let kind: String
        public let exists: String

        public init(kind: String, exists: String) {
            (self.kind, self.exists) = (kind, exists)
        }
    }

    /// A count to report when it is not zero: SQL returning one number, and what it counts.
    public struct Waiting: Sendable {
        public let count: String
        public let note: String

        public init(count: String, note: String) {
            (self.count, self.note) = (count, note)
        }
    }

    /// A kind of record that holds money: SQL on a pending transfer `t`, true when a live record
    /// of it holds that transfer (`owned`), and text naming the record that does or did, NULL when
    /// none of its records names the transfer (`described`).
    public struct Hold: Sendable {
        public let owned: String
        public let described: String

        public init(owned: String, described: String) {
            (self.owned, self.described) = (owned, described)
        }
    }

    public let causes: [Cause]
    public let holds: [Hold]
    public let waiting: [Waiting]

    public init(causes: [Cause], holds: [Hold], waiting: [Waiting]) {
        (self.causes, self.holds, self.waiting) = (causes, holds, waiting)
    }
}
