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
        return try await self.postgres.transaction { tx in
            try await tx.query("SELECT pg_advisory_xact_lock(160016)")
            let existing = try await tx.query("SELECT name FROM kyc_tiers").map { try $0.decode(String.self, column: 0) }
            try await tx.query("UPDATE kyc_tiers SET is_default = false WHERE is_default")
            for tier in tiers {
                try await tx.query(
                    """
                    INSERT INTO kyc_tiers (name, per_transaction, daily, max_balance, is_default)
                    VALUES (\(tier.name), \(tier.perTransaction), \(tier.daily), \(tier.maxBalance), \(tier.name == defaultTier))
                    ON CONFLICT (name) DO UPDATE SET per_transaction = excluded.per_transaction, daily = excluded.daily,
                        max_balance = excluded.max_balance, is_default = excluded.is_default
                    """
                )
            }
            for name in existing where !tiers.contains(where: { $0.name == name }) {
                let holders = try await tx.query("SELECT count(*) FROM customers WHERE tier = \(name)").single()!.decode(Int64.self, column: 0)
                guard holders == 0 else {
                    throw WalletError.invalidArgument("tier \(name) is held by \(holders) customer(s): move them (customer tier) before removing it")
                }
                try await tx.query("DELETE FROM kyc_tiers WHERE name = \(name)")
            }
            var recorded = settings
            for tier in tiers {
                recorded["tier.\(tier.name)"] = "per transaction \(tier.perTransaction), daily \(tier.daily), max balance \(tier.maxBalance.map(String.init) ?? "none") (cents)"
            }
            recorded["tier.default"] = defaultTier
            let after = Self.json(recorded)
            let last = try await tx.query(
                "SELECT after::text, after = \(after)::jsonb FROM audit_log WHERE action = 'config.applied' ORDER BY id DESC LIMIT 1"
            ).single()
            if let last, try last.decode(Bool.self, column: 1) { return false }
            try await tx.query(
                """
                INSERT INTO audit_log (actor, action, before, after)
                VALUES ('system', 'config.applied', \(try last?.decode(String.self, column: 0))::jsonb, \(after)::jsonb)
                """
            )
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
    func tierLimits(_ connection: PostgresConnection, customer: Int64) async throws -> KYCTier? {
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
