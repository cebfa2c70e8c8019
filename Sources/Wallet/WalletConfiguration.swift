import Basics
import Foundation
import Postgres

/// A KYC tier's limits, in cents: per send or withdrawal, per Nairobi day of sends and
/// withdrawals, and the most a customer's wallet (main and savings) may hold (nil: no cap).
public struct KYCTier: Sendable, Hashable, Codable {
    public let name: String
    public let perTransaction: Int64
    public let daily: Int64
    public let maxBalance: Int64?

    public init(name: String, perTransaction: Int64, daily: Int64, maxBalance: Int64?) {
        self.name = name
        self.perTransaction = perTransaction
        self.daily = daily
        self.maxBalance = maxBalance
    }
}

extension Wallet {
    /// Writes the configuration's KYC tiers to the database (where every movement reads them, under
    /// the lock of the account it moves) and records the configuration in the audit trail when it
    /// differs from the one recorded last (`config.applied`, the old values in `before`), in one
    /// transaction. Replicas starting together take turns. A tier that customers still hold cannot
    /// be removed: that start-up is refused, naming the tier. True when something changed.
    @discardableResult
    public func applyConfiguration(tiers: [KYCTier], defaultTier: String, settings: [String: String]) async throws -> Bool {
        guard tiers.contains(where: { $0.name == defaultTier }) else {
            throw WalletError.invalidArgument("the default tier \(defaultTier) is not defined")
        }
        var recorded = settings
        for tier in tiers {
            recorded["tier.\(tier.name)"] = "per transaction \(tier.perTransaction), daily \(tier.daily), max balance \(tier.maxBalance.map(String.init) ?? "none") (cents)"
        }
        recorded["tier.default"] = defaultTier
        let tiersJSON = JSONValue.array(
            tiers.map { tier in
                var fields: [String: JSONValue] = [
                    "name": .string(tier.name), "per_transaction": .string(String(tier.perTransaction)), "daily": .string(String(tier.daily)),
                ]
                if let cap = tier.maxBalance { fields["max_balance"] = .string(String(cap)) }
                return .object(fields)
            }
        ).serialized
        // The gateway may not write the tiers itself: the wallet's function does, as the schema's
        // owner, and records the configuration in the audit trail in the same transaction.
        do {
            return try await self.postgres.query(
                "SELECT wallet_apply_configuration(\(tiersJSON)::jsonb, \(defaultTier), \(Self.json(recorded))::jsonb)"
            ).single()!.decode(Bool.self, column: 0)
        } catch let error as PostgresError where error.sqlState == "UL010" {
            throw WalletError.invalidArgument(error.refusal ?? "a tier customers hold cannot be removed")
        }
    }

    /// Who this wallet's connections are to the database: the login, and whether it is a superuser,
    /// may act as the schema's owner, or is in `ussd_app` (what `serve` should log in as).
    public struct DatabaseIdentity: Sendable, Hashable {
        public let user: String
        public let isSuperuser: Bool
        public let actsAsOwner: Bool
        public let isApp: Bool
        /// May create roles: on Postgres 15 such a login can grant itself any other role.
        public let canCreateRoles: Bool
    }

    public func databaseIdentity() async throws -> DatabaseIdentity {
        let row = try await self.postgres.query(
            """
            SELECT current_user::text, coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
                   coalesce((SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user), false),
                   coalesce(pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'transfers'), 'USAGE'), false),
                   EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_app') AND pg_has_role(current_user, 'ussd_app', 'USAGE')
            """
        ).single()!
        let (user, superuser, createRole, owner, app) = try row.decode((String, Bool, Bool, Bool, Bool).self)
        return DatabaseIdentity(user: user, isSuperuser: superuser, actsAsOwner: owner, isApp: app, canCreateRoles: createRole)
    }

    /// Writes the staff desk's limits, in cents, where the database's four-eyes checks read them
    /// (`ussd-gateway migrate`, as the schema's owner), and records a change in the audit trail.
    /// True when something changed.
    @discardableResult
    public func applyLedgerSettings(dualApprovalAbove: Int64, adjustMax: Int64) async throws -> Bool {
        guard dualApprovalAbove > 0, adjustMax > 0 else { throw WalletError.invalidArgument("the ledger limits must be positive") }
        return try await self.postgres.transaction { tx in
            let before = try await tx.query("SELECT name, value FROM ledger_settings ORDER BY name FOR UPDATE").map { try $0.decode((String, Int64).self) }
            let after = ["adjust_max": adjustMax, "dual_approval_above": dualApprovalAbove]
            guard Dictionary(uniqueKeysWithValues: before) != after else { return false }
            for (name, value) in after {
                try await tx.query(
                    "INSERT INTO ledger_settings (name, value) VALUES (\(name), \(value)) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            }
            try await Self.audit(
                tx, actor: "system", "config.ledger", msisdn: nil, reason: nil,
                before: Dictionary(uniqueKeysWithValues: before.map { ($0.0, String($0.1)) }), after: after.mapValues { String($0) })
            return true
        }
    }

    /// The tiers as the database has them; the default one first.
    public func tiers() async throws -> [(tier: KYCTier, isDefault: Bool)] {
        try await self.postgres.query("SELECT name, per_transaction, daily, max_balance, is_default FROM kyc_tiers ORDER BY is_default DESC, name")
            .map {
                let (name, perTransaction, daily, maxBalance, isDefault) = try $0.decode((String, Int64, Int64, Int64?, Bool).self)
                return (KYCTier(name: name, perTransaction: perTransaction, daily: daily, maxBalance: maxBalance), isDefault)
            }
    }

    /// The customer's tier limits as `connection` sees them (their own tier, or the default).
    package func tierLimits(_ connection: PostgresConnection, customer: Int64) async throws -> KYCTier? {
        try await connection.query(
            """
            SELECT t.name, t.per_transaction, t.daily, t.max_balance FROM customers c
            JOIN kyc_tiers t ON t.name = coalesce(c.tier, (SELECT d.name FROM kyc_tiers d WHERE d.is_default))
            WHERE c.id = \(customer)
            """
        ).single().map {
            let (name, perTransaction, daily, maxBalance) = try $0.decode((String, Int64, Int64, Int64?).self)
            return KYCTier(name: name, perTransaction: perTransaction, daily: daily, maxBalance: maxBalance)
        }
    }
}

/// The ledger counts in one currency and this start-up names another (``Wallet/claimCurrency(_:)``).
public struct LedgerCurrencyMismatch: Error, CustomStringConvertible {
    public let ledger: String
    public let configured: String
    public init(ledger: String, configured: String) {
        (self.ledger, self.configured) = (ledger, configured)
    }
    public var description: String {
        "the ledger counts in \(self.ledger) and CURRENCY is \(self.configured): one ledger holds one currency (a deployment in another country needs a database of its own)"
    }
}

extension Wallet {
    /// Claims `currency` for a ledger that has none yet, and checks that the one in force is it:
    /// the same code and the same minor units. A mismatch is ``LedgerCurrencyMismatch``, and
    /// `serve` refuses to start.
    public func claimCurrency(_ currency: Currency) async throws {
        let row = try await self.postgres.query("SELECT code, minor_units FROM wallet_claim_currency(\(currency.code), \(currency.minorUnits)::int)").single()!
        let (code, minorUnits) = try row.decode((String, Int32).self)
        guard code == currency.code, Int(minorUnits) == currency.minorUnits else {
            throw LedgerCurrencyMismatch(ledger: code, configured: currency.code)
        }
    }
}
