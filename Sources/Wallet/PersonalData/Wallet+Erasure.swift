import Basics
import Foundation
import Postgres

extension Wallet {
    /// Closes a wallet with nothing in it (every account at zero, nothing held, no deposit or
    /// payout in flight): every movement is refused from then on. The customer gets an SMS; written
    /// to the audit trail. The first step of an erasure (``requestErasure(_:by:)``).
    public func close(_ msisdn: MSISDN, by action: OperatorAction) async throws -> DeskOutcome {
        defer { self.forgetProfile(msisdn) }
        return try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT id, status FROM customers WHERE msisdn = \(msisdn.value) FOR UPDATE").single() else {
                return .notRegistered
            }
            let (id, old) = try row.decode((Int64, String).self)
            guard old != Customer.Status.closed.rawValue else { return .unchanged }
            // What the desk checks before closing; the erasure checks it again, under the accounts'
            // locks, in the database.
            let (money, inFlight) = try await tx.query(
                """
                SELECT (SELECT count(*) FROM account_balances a WHERE a.customer_id = \(id) AND (a.balance <> 0 OR a.held <> 0))::bigint,
                    ((SELECT count(*) FROM deposits d WHERE d.customer_id = \(id) AND d.status = 'pending')
                     + (SELECT count(*) FROM payouts p WHERE p.customer_id = \(id) AND p.status IN ('reserved', 'sent', 'unknown')))::bigint
                """
            ).single()!.decode((Int64, Int64).self)
            guard money == 0 else { throw WalletError.invalidArgument("the wallet still holds money: pay it out before closing it") }
            guard inFlight == 0 else { throw WalletError.invalidArgument("a deposit or payout of this wallet is still in flight") }
            try await tx.query("UPDATE customers SET status = 'closed', updated_at = now() WHERE id = \(id)")
            let audit = try await Self.audit(tx, action, "customer.closed", msisdn: msisdn, before: ["status": old], after: ["status": "closed"])
            try await self.queueSMS(tx, to: msisdn, template: "account_closed", params: [:], dedupe: "audit:\(audit)")
            return .changed
        }
    }

    /// Reopens a wallet closed by mistake: closing is one person's change and is not final on one
    /// person's word. Refused while an erasure of it waits for an approver (reject that first);
    /// an erased wallet has no number left to reopen. Audited.
    public func reopen(_ msisdn: MSISDN, by action: OperatorAction) async throws -> DeskOutcome {
        defer { self.forgetProfile(msisdn) }
        return try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT id, status FROM customers WHERE msisdn = \(msisdn.value) FOR UPDATE").single() else {
                return .notRegistered
            }
            let (id, old) = try row.decode((Int64, String).self)
            guard old == Customer.Status.closed.rawValue else { return .unchanged }
            guard try await tx.query("SELECT 1 FROM ledger_requests WHERE msisdn = \(msisdn.value) AND kind = 'erase' AND status = 'pending'").isEmpty else {
                throw WalletError.invalidArgument("an erasure of this wallet waits for an approver: reject it first (ledger reject)")
            }
            try await tx.query("UPDATE customers SET status = 'active', updated_at = now() WHERE id = \(id)")
            _ = try await Self.audit(tx, action, "customer.reopened", msisdn: msisdn, before: ["status": old], after: ["status": "active"])
            return .changed
        }
    }

    /// Asks for a closed wallet's personal data to be erased. When another person approves it
    /// (`ledger approve`), the database blanks the wallet's personal fields and vacates its number;
    /// the key custodian's sweep (``destroyErasedKeys()``) then destroys the customer's data key:
    /// their name, texts and payloads are unreadable everywhere, backups included, while the ledger
    /// keeps every transfer under the customer's pseudonymous subject.
    public func requestErasure(_ msisdn: MSISDN, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.asking { tx in
            guard try await !tx.query("SELECT 1 FROM customers WHERE msisdn = \(msisdn.value)").isEmpty else { throw WalletError.notRegistered }
            do {
                let request = try Self.ledgerRequest(
                    try await tx.query(
                        """
                        INSERT INTO ledger_requests (kind, msisdn, reason) VALUES ('erase', \(msisdn.value), \(action.reason))
                        RETURNING \(unescaped: Self.requestColumns)
                        """
                    ).single()!
                )
                try await Self.audit(tx, action, "customer.erase_requested", msisdn: msisdn, before: nil, after: ["request": String(request.id)])
                return request
            } catch let error as PostgresError where error.isUniqueViolation {
                throw WalletError.invalidArgument("an erasure of \(msisdn.value) is already waiting for an approver")
            }
        }
    }

    /// Destroys the data keys of every erased customer whose key the key store still holds (an
    /// erasure approved where the key store could not be reached, or just now). Returns how many.
    @discardableResult
    public func destroyErasedKeys(batchSize: Int = 1000) async throws -> Int {
        let personalData = try self.requirePersonalData()
        try await personalData.prepareStore()
        var destroyed = 0
        var after: Int64 = 0
        while true {
            let rows = try await self.postgres.query(
                "SELECT id, subject::text FROM customers WHERE erased_at IS NOT NULL AND id > \(after) ORDER BY id LIMIT \(batchSize)"
            ).map { try $0.decode((Int64, String).self) }
            guard let last = rows.last else { return destroyed }
            after = last.0
            let subjects = "{" + rows.map(\.1).joined(separator: ",") + "}"
            let present = try await personalData.store.query("SELECT subject::text FROM data_keys WHERE subject = ANY(\(subjects)::uuid[])")
                .map { try $0.decode(String.self, column: 0) }
            for subject in present where try await personalData.destroy(UUID(uuidString: subject)!, reason: "customer erased") {
                destroyed += 1
            }
        }
    }
}
