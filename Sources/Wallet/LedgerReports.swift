import Foundation
import Postgres

/// What `ledger audit` found: each check, and whether it held.
public struct LedgerAudit: Sendable, Hashable, Codable {
    public struct Check: Sendable, Hashable, Codable {
        public let name: String
        public let passed: Bool
        /// What was found: a figure when it passed, the offending rows (at most 20) when not.
        public let details: [String]
    }

    public let checks: [Check]
    /// Facts for a person that are not breaches: open review items, requests waiting for approval.
    public let notes: [String]
    public var passed: Bool { self.checks.allSatisfy(\.passed) }
}

extension Wallet {
    // MARK: Ledger audit

    /// Checks the ledger's invariants: balances sum to zero; no customer balance is negative;
    /// every balance and hold is what the transfers make it; every hold belongs to a live payout of
    /// one of `providers`, and every transfer names a cause that exists; no hold is older than
    /// `maxHoldAge`.
    public func auditLedger(maxHoldAge: Duration = .seconds(48 * 3600), providers: [LedgerProvenance]) async throws -> LedgerAudit {
        try await self.postgres.transaction { tx in
            // One snapshot for every check.
            try await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            // Each check is a few milliseconds of work whose estimated cost invites JIT compilation,
            // which takes hundreds of milliseconds of CPU per query: never worth it here.
            try await tx.query("SET LOCAL jit = off")
            var checks: [LedgerAudit.Check] = []
            let (total, accounts) = try await tx.query("SELECT coalesce(sum(balance), 0)::bigint, count(*) FROM account_balances").single()!
                .decode((Int64, Int64).self)
            checks.append(
                LedgerAudit.Check(
                    name: "balances sum to zero", passed: total == 0,
                    details: ["sum of \(accounts) account balances: \(total) cents"]
                )
            )
            for invariant in LedgerInvariant.ledger + LedgerInvariant.provenance(providers) + [LedgerInvariant.noHoldOlder(than: maxHoldAge, providers)] {
                let rows = try await tx.query(invariant.query).map { try $0.decode(String.self, column: 0) }
                checks.append(
                    LedgerAudit.Check(name: invariant.name, passed: rows.isEmpty, details: rows.isEmpty ? [invariant.passing] : Array(rows.prefix(20)))
                )
            }
            var notes: [String] = []
            for waiting in providers.flatMap(\.waiting) {
                let count = try await tx.query("\(unescaped: waiting.count)").single()!.decode(Int64.self, column: 0)
                if count > 0 { notes.append("\(count) \(waiting.note)") }
            }
            let waiting = try await tx.query("SELECT count(*) FROM ledger_requests WHERE status = 'pending'").single()!.decode(Int64.self, column: 0)
            if waiting > 0 { notes.append("\(waiting) ledger request(s) waiting for approval (ledger requests)") }
            return LedgerAudit(checks: checks, notes: notes)
        }
    }
}
