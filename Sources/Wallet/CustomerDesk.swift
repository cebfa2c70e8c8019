import Basics
import Foundation
import Postgres

/// What an operator's change to a customer did.
public enum DeskOutcome: Sendable, Hashable {
    /// Done, and written to the audit trail with its effect.
    case changed
    /// The customer was already so: nothing done, nothing written.
    case unchanged
    case notRegistered
}

extension Wallet {
    /// Blocks a customer (status `suspended`): from now on only the balance may be checked. Every
    /// movement they start is refused as `blocked` by the database, whichever channel asks. The
    /// customer gets an SMS.
    public func block(_ msisdn: MSISDN, by action: OperatorAction) async throws -> DeskOutcome {
        try await self.setStatus(msisdn, to: .suspended, auditAction: "customer.blocked", notice: "account_blocked", by: action)
    }

    /// Lifts a block.
    public func unblock(_ msisdn: MSISDN, by action: OperatorAction) async throws -> DeskOutcome {
        try await self.setStatus(msisdn, to: .active, auditAction: "customer.unblocked", notice: "account_unblocked", by: action)
    }

    private func setStatus(_ msisdn: MSISDN, to status: Customer.Status, auditAction: String, notice: String, by action: OperatorAction) async throws
        -> DeskOutcome
    {
        defer { self.forgetProfile(msisdn) }
        return try await self.postgres.transaction { tx in
            guard let row = try await tx.query("SELECT status FROM customers WHERE msisdn = \(msisdn.value) FOR UPDATE").single() else {
                return .notRegistered
            }
            let old = try row.decode(String.self, column: 0)
            guard old != status.rawValue else { return .unchanged }
            guard old != Customer.Status.closed.rawValue else { throw WalletError.invalidArgument("the wallet is closed") }
            try await tx.query("UPDATE customers SET status = \(status.rawValue), updated_at = now() WHERE msisdn = \(msisdn.value)")
            let id = try await Self.audit(tx, action, auditAction, msisdn: msisdn, before: ["status": old], after: ["status": status.rawValue])
            try await self.queueSMS(tx, to: msisdn, template: notice, params: [:], dedupe: "audit:\(id)")
            return .changed
        }
    }

    /// Sets the new PIN after an approved reset (``requestPINReset(_:by:)``); the database notes when,
    /// which starts the cooling-off window; `tokenExpired` when no reset is waiting (it was
    /// completed in another session). Written to the audit trail with the customer as the actor.
    public func completePINReset(_ msisdn: MSISDN, new pin: String) async throws {
        defer { self.forgetProfile(msisdn) }
        let customer = try await self.customer(msisdn)
        guard customer.pinResetRequired else { throw WalletError.tokenExpired }
        guard PINPolicy.isWellFormed(pin) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(pin, msisdn: msisdn.value) else { throw WalletError.weakPIN }
        let hash = try await self.pins.value(for: pin, customer: customer.id)
        let done = try await self.postgres.query(
            """
            WITH changed AS (
                UPDATE customers SET pin_hash = \(hash), pin_reset_required = false, failed_pin_attempts = 0, updated_at = now()
                WHERE id = \(customer.id) AND pin_reset_required RETURNING msisdn
            )
            INSERT INTO audit_log (actor, action, msisdn, before, after)
            SELECT 'customer', 'pin.reset_completed', msisdn, '{"pin_reset_required": "true"}', '{"pin_reset_required": "false"}' FROM changed
            RETURNING id
            """
        )
        if done.isEmpty { throw WalletError.tokenExpired }
    }

    /// Puts a customer in a KYC tier (one of ``applyConfiguration``'s); nil puts them back in the
    /// default tier.
    public func setTier(_ msisdn: MSISDN, to tier: String?, by action: OperatorAction) async throws -> DeskOutcome {
        defer { self.forgetProfile(msisdn) }
        return try await self.postgres.transaction { tx in
            if let tier, try await tx.query("SELECT 1 FROM kyc_tiers WHERE name = \(tier)").isEmpty {
                let known = try await tx.query("SELECT name FROM kyc_tiers ORDER BY name").map { try $0.decode(String.self, column: 0) }
                throw WalletError.invalidArgument("no tier \(tier) (known: \(known.joined(separator: ", ")))")
            }
            guard let row = try await tx.query("SELECT tier FROM customers WHERE msisdn = \(msisdn.value) FOR UPDATE").single() else {
                return .notRegistered
            }
            let old = try row.decode(String?.self, column: 0)
            guard old != tier else { return .unchanged }
            try await tx.query("UPDATE customers SET tier = \(tier), updated_at = now() WHERE msisdn = \(msisdn.value)")
            try await Self.audit(tx, action, "customer.tier", msisdn: msisdn, before: ["tier": old ?? "default"], after: ["tier": tier ?? "default"])
            return .changed
        }
    }

    /// Appends one row to the audit trail in the caller's transaction; its id.
    @discardableResult
    package static func audit(
        _ tx: PostgresConnection, _ action: OperatorAction?, _ what: String, msisdn: MSISDN?, before: [String: String]?, after: [String: String]?
    ) async throws -> Int64 {
        try await Self.audit(
            tx, actor: action == nil ? "system" : nil, what, msisdn: msisdn?.value, reason: action?.reason, before: before, after: after)
    }

    @discardableResult
    package static func audit(
        _ tx: PostgresConnection, actor: String?, _ what: String, msisdn: String?, reason: String?, before: [String: String]?, after: [String: String]?
    ) async throws -> Int64 {
        // No actor: the session's own database identity (a member of staff's login).
        try await tx.query(
            """
            INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
            VALUES (coalesce(\(actor), current_user), \(what), \(msisdn), \(reason), \(before.map(Self.json))::jsonb, \(after.map(Self.json))::jsonb) RETURNING id
            """
        ).single()!.decode(Int64.self, column: 0)
    }

    static func json(_ values: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(values)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
