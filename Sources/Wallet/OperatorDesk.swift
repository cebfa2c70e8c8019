import Basics
import Foundation
import Postgres

/// Why a member of staff changes something by hand. Who they are is not typed: the database
/// records its own identity of the session (`current_user`: the person's login on the CLI, the
/// role the staff desk switches to), and every operator action is written to `audit_log` in the
/// same transaction as its effect, so neither exists without the other.
public struct OperatorAction: Sendable, Hashable {
    public let reason: String

    /// Refuses an empty or over-long reason, and control characters (the trail is read in a terminal).
    public init(reason: String) throws(WalletError) {
        let why = reason.trimmingCharacters(in: .whitespaces)
        guard (1...500).contains(why.count) else {
            throw WalletError.invalidArgument("a reason (up to 500 characters) is required")
        }
        guard !why.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw WalletError.invalidArgument("the reason must not contain control characters")
        }
        self.reason = why
    }
}

/// One row of the audit trail.
public struct AuditEntry: Sendable, Hashable, Codable {
    public let id: Int64
    public let at: Date
    /// The member of staff's database login, `system` or `customer`.
    public let actor: String
    /// `pin.unlocked`, `pin.locked`, ...
    public let action: String
    public let msisdn: String?
    public let reason: String?
    /// The values before and after, as JSON text.
    public let before: String?
    public let after: String?
}

/// What the support desk sees of a customer.
public struct CustomerOverview: Sendable, Hashable {
    public struct Hold: Sendable, Hashable {
        /// The payout's id (our OriginatorConversationID).
        public let payout: String
        public let amount: Amount
        public let status: String
        public let since: Date
    }

    public let customer: Wallet.Customer
    /// The name, opened for this read (recorded in the audit trail); nil once erased.
    public let name: String?
    public let failedPINAttempts: Int
    /// Locks in a row: the third lasts until an operator unlocks.
    public let locksInARow: Int
    public let registeredAt: Date
    public let balances: Wallet.Balances
    /// Payouts holding money: reserved, sent, or with an outcome not known yet.
    public let holds: [Hold]
    /// The last 20 movements, newest first.
    public let movements: [StatementEntry]
}

extension Wallet {
    /// Lifts a PIN lock (the third lock in a row lasts until this) and starts both counts again,
    /// recording who, why, and the lock as it was. False when the number is not registered.
    @discardableResult
    public func unlockPIN(_ msisdn: MSISDN, by action: OperatorAction) async throws -> Bool {
        defer { self.forgetProfile(msisdn) }
        return try await !self.postgres.query(
            """
            WITH old AS (
                SELECT id, msisdn, failed_pin_attempts, pin_locks, locked_until FROM customers WHERE msisdn = \(msisdn.value) FOR UPDATE
            ), changed AS (
                UPDATE customers c SET locked_until = NULL, failed_pin_attempts = 0, pin_locks = 0, updated_at = now()
                FROM old WHERE c.id = old.id RETURNING c.id
            )
            INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
            SELECT current_user, 'pin.unlocked', old.msisdn, \(action.reason),
                   jsonb_build_object('failed_pin_attempts', old.failed_pin_attempts, 'locks_in_a_row', old.pin_locks, 'locked_until', old.locked_until),
                   jsonb_build_object('failed_pin_attempts', 0, 'locks_in_a_row', 0, 'locked_until', NULL)
            FROM old JOIN changed ON changed.id = old.id
            RETURNING id
            """
        ).isEmpty
    }

    /// A customer's audit trail, newest first: the rows that name them by their subject (every row
    /// written while they were registered, migration 0021) or by the number (a row about it from
    /// when nobody held it).
    public func auditTrail(_ msisdn: MSISDN, limit: Int = 200) async throws -> [AuditEntry] {
        let rows = try await self.postgres.query(
            """
            SELECT id, at, actor, action, \(msisdn.value)::text, reason, before::text, after::text FROM audit_log
            WHERE subject = (SELECT subject FROM customers WHERE msisdn = \(msisdn.value))
            UNION ALL
            SELECT id, at, actor, action, msisdn, reason, before::text, after::text FROM audit_log WHERE msisdn = \(msisdn.value)
            ORDER BY id DESC LIMIT \(max(1, min(limit, 10_000)))
            """
        )
        return try rows.map(Self.auditEntry)
    }

    /// The whole audit trail, newest first, by who (`actor`), what (an `action` prefix) and when
    /// (`from` inclusive, `to` exclusive), each when given; the number of a row about a customer
    /// is read through their subject (migration 0021).
    public func auditTrail(actor: String?, actionPrefix: String?, from: Date?, to: Date?, limit: Int = 200) async throws -> [AuditEntry] {
        try await self.postgres.query(
            """
            SELECT a.id, a.at, a.actor, a.action, coalesce(c.msisdn, a.msisdn), a.reason, a.before::text, a.after::text
            FROM audit_log a LEFT JOIN customers c ON c.subject = a.subject
            WHERE (\(actor)::text IS NULL OR a.actor = \(actor)) AND (\(actionPrefix)::text IS NULL OR starts_with(a.action, \(actionPrefix)))
                AND (\(from)::timestamptz IS NULL OR a.at >= \(from)) AND (\(to)::timestamptz IS NULL OR a.at < \(to))
            ORDER BY a.id DESC LIMIT \(max(1, min(limit, 10_000)))
            """
        ).map(Self.auditEntry)
    }

    static func auditEntry(_ row: PostgresRow) throws -> AuditEntry {
        AuditEntry(
            id: try row.decode(Int64.self, column: 0), at: try row.decode(Date.self, column: 1), actor: try row.decode(String.self, column: 2),
            action: try row.decode(String.self, column: 3), msisdn: try row.decode(String?.self, column: 4),
            reason: try row.decode(String?.self, column: 5), before: try row.decode(String?.self, column: 6), after: try row.decode(String?.self, column: 7)
        )
    }

    /// Everything the support desk needs to answer a call about this number; nil when it is not
    /// registered. The read is written to the audit trail (who, by the database's identity; why;
    /// what was shown) before anything is shown.
    public func overview(_ msisdn: MSISDN, by action: OperatorAction) async throws -> CustomerOverview? {
        guard let row = try await self.postgres.query(
            """
            SELECT id, msisdn, name_sealed, language, status, locked_until, pin_reset_required, tier, failed_pin_attempts, pin_locks, created_at,
                pin_reset_completed_at, subject::text AS subject, erased_at
            FROM customers WHERE msisdn = \(msisdn.value)
            """
        ).single() else { return nil }
        let customer = try Self.customer(row)
        try await self.recordRead(msisdn, "customer.viewed", shown: "profile, name, balances, holds, last 20 movements", by: action)
        let holds = try await self.postgres.query(
            """
            SELECT id, amount, status, created_at FROM payouts
            WHERE customer_id = \(customer.id) AND status IN ('reserved', 'sent', 'unknown') ORDER BY created_at
            """
        ).map { hold in
            CustomerOverview.Hold(
                payout: try hold.decode(String.self, column: 0), amount: Amount(cents: try hold.decode(Int64.self, column: 1)),
                status: try hold.decode(String.self, column: 2), since: try hold.decode(Date.self, column: 3)
            )
        }
        return CustomerOverview(
            customer: customer, name: try await self.name(of: customer), failedPINAttempts: try row.decode(Int.self, column: 8), locksInARow: try row.decode(Int.self, column: 9),
            registeredAt: try row.decode(Date.self, column: 10), balances: try await self.balances(msisdn), holds: holds,
            movements: try await self.statement(msisdn, limit: 20)
        )
    }
}

extension Wallet {
    /// Records a refused provider callback (forged, from outside the allowlist, or malformed) in
    /// `callback_refusals` (migration 0021), kept `RETENTION_REFUSED_CALLBACK_DAYS`: the route, why,
    /// the source address and the status answered; never the body. `suppressed` counts the
    /// refusals over the rate cap since the last row.
    public func recordRefusedCallback(route: String, reason: String, source: String?, status: Int, suppressed: Int = 0) async throws {
        try await self.postgres.query(
            """
            INSERT INTO callback_refusals (route, reason, source, status, suppressed_before)
            VALUES (\(String(route.prefix(200))), \(String("\(route): \(reason)".prefix(500))), \(source.map { String($0.prefix(100)) }), \(status), \(suppressed))
            """
        )
    }
}

extension Wallet {
    /// Writes a member of staff's read of a customer's personal data to the audit trail: `what`
    /// (`customer.viewed`, `customer.exported`), why, and what was shown. Staff and reporting
    /// logins may write these rows (migration 0020); the database names the reader.
    public func recordRead(_ msisdn: MSISDN, _ what: String, shown: String, by action: OperatorAction) async throws {
        try await self.postgres.transaction { tx in
            _ = try await Self.audit(tx, action, what, msisdn: msisdn, before: nil, after: ["shown": shown])
        }
    }
}
