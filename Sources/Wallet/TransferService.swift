import Foundation
import Postgres

/// Per-transaction and daily limits (defaults follow M-Pesa's: 1 to 250,000 KES per transaction,
/// 500,000 KES of sends and withdrawals per Nairobi day).
public struct WalletLimits: Sendable, Hashable {
    public var perTransaction: ClosedRange<Int64> = 100...25_000_000
    public var daily: Int64 = 50_000_000

    public init() {}
}

/// What a posted movement returns; the same key asked again returns the same receipt.
public struct TransferReceipt: Sendable, Hashable {
    public let key: String
    public let kind: String
    public let amount: Amount
    public let createdAt: Date
    /// The initiating customer's balances after this movement (now, for a replayed key).
    public let balances: Wallet.Balances
}

extension Wallet {
    /// Sends money from one customer's main account to another's, once per key.
    public func send(from sender: MSISDN, to recipient: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> TransferReceipt {
        try await self.move(
            kind: "p2p", key: key, amount: amount, initiator: sender,
            debit: .customer(sender, "main"), credit: .customer(recipient, "main")
        )
    }

    /// Moves money from main to savings, once per key.
    public func save(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> TransferReceipt {
        try await self.move(kind: "save", key: key, amount: amount, initiator: msisdn, debit: .customer(msisdn, "main"), credit: .customer(msisdn, "savings"))
    }

    /// Moves money from savings back to main, once per key.
    public func unsave(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> TransferReceipt {
        try await self.move(kind: "unsave", key: key, amount: amount, initiator: msisdn, debit: .customer(msisdn, "savings"), credit: .customer(msisdn, "main"))
    }

    enum Party: Sendable, Hashable {
        case customer(MSISDN, String)

        var msisdn: MSISDN {
            switch self { case .customer(let msisdn, _): return msisdn }
        }
        var accountKind: String {
            switch self { case .customer(_, let kind): return kind }
        }
    }

    /// One movement in one transaction: accounts locked in id order, replay check, rules, insert.
    /// A business refusal is recorded under the key (so a retry fails the same way) and thrown
    /// after the commit; deadlocks and serialization failures rerun the transaction.
    func move(kind: String, key: IdempotencyKey, amount: Amount, initiator: MSISDN, debit: Party, credit: Party) async throws -> TransferReceipt {
        let fingerprint = "\(kind)|\(debit.msisdn)|\(debit.accountKind)|\(credit.msisdn)|\(credit.accountKind)|\(amount.cents)"
        for attempt in 1...5 {
            do {
                let outcome: Result<TransferReceipt, WalletError> = try await self.postgres.transaction(maxAttempts: 5) { tx in
                    // Lock first, then look for a replay: two requests with the same key lock the
                    // same rows, so the second always sees what the first committed.
                    let refusal = try await self.check(tx, kind: kind, amount: amount, debit: debit, credit: credit)
                    if let replay = try await self.replay(tx, key: key, fingerprint: fingerprint, initiator: initiator) { return replay }
                    switch refusal {
                    case .failure(let error):
                        try await tx.query(
                            "INSERT INTO failed_transfers (id, fingerprint, error) VALUES (\(key.value), \(fingerprint), \(error.code)) ON CONFLICT (id) DO NOTHING"
                        )
                        return .failure(error)
                    case .success(let (debitID, creditID)):
                        let row = try await tx.query(
                            """
                            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
                            VALUES (\(key.value), \(debitID), \(creditID), \(amount.cents), \(kind), 'posted', jsonb_build_object('fingerprint', \(fingerprint)::text))
                            RETURNING created_at
                            """
                        ).single()!
                        let created = try row.decode(Date.self, column: 0)
                        if kind == "p2p" {
                            let params = ["amount": String(amount.cents), "key": key.value]
                            try await self.queueSMS(tx, to: debit.msisdn, template: "sent", params: params.merging(["to": credit.msisdn.value]) { $1 }, dedupe: "\(key.value):sent")
                            try await self.queueSMS(tx, to: credit.msisdn, template: "received", params: params.merging(["from": debit.msisdn.value]) { $1 }, dedupe: "\(key.value):received")
                        }
                        let balances = try await self.balances(tx, initiator) ?? Balances(main: .zero, savings: .zero, held: .zero)
                        return .success(TransferReceipt(key: key.value, kind: kind, amount: amount, createdAt: created, balances: balances))
                    }
                }
                return try outcome.get()
            } catch let error as PostgresError where error.isUniqueViolation && error.constraint == "transfers_pkey" && attempt < 5 {
                // The same key committed concurrently: the next attempt replays it.
                continue
            } catch let error as PostgresError where error.constraint == "customer_balance_never_negative" {
                throw WalletError.insufficientFunds
            }
        }
        throw WalletError.idempotencyKeyReused
    }

    /// The original outcome of a key already used, or nil for a new key.
    private func replay(_ tx: PostgresConnection, key: IdempotencyKey, fingerprint: String, initiator: MSISDN) async throws -> Result<TransferReceipt, WalletError>? {
        if let row = try await tx.query(
            "SELECT kind, amount, created_at, metadata->>'fingerprint' FROM transfers WHERE id = \(key.value)"
        ).single() {
            let (kind, cents, created, stored) = try row.decode((String, Int64, Date, String?).self)
            guard stored == fingerprint else { return .failure(.idempotencyKeyReused) }
            let balances = try await self.balances(tx, initiator) ?? Balances(main: .zero, savings: .zero, held: .zero)
            return .success(TransferReceipt(key: key.value, kind: kind, amount: Amount(cents: cents), createdAt: created, balances: balances))
        }
        if let row = try await tx.query("SELECT fingerprint, error FROM failed_transfers WHERE id = \(key.value)").single() {
            let (stored, code) = try row.decode((String, String).self)
            guard stored == fingerprint else { return .failure(.idempotencyKeyReused) }
            return .failure(WalletError(code: code))
        }
        return nil
    }

    /// Locks both accounts in id order and applies the rules; the two account ids, or the refusal.
    private func check(_ tx: PostgresConnection, kind: String, amount: Amount, debit: Party, credit: Party) async throws -> Result<(Int64, Int64), WalletError> {
        let rows = try await tx.query(
            """
            SELECT a.id, c.msisdn, a.kind, a.balance - a.held, c.status
            FROM accounts a JOIN customers c ON c.id = a.customer_id
            WHERE (c.msisdn = \(debit.msisdn.value) AND a.kind = \(debit.accountKind))
               OR (c.msisdn = \(credit.msisdn.value) AND a.kind = \(credit.accountKind))
            ORDER BY a.id
            FOR UPDATE OF a
            """
        )
        var debitID: Int64?, creditID: Int64?, available: Int64 = 0, debitStatus = "", creditStatus = ""
        for row in rows {
            let (id, msisdn, accountKind, spendable, status) = try row.decode((Int64, String, String, Int64, String).self)
            if msisdn == debit.msisdn.value && accountKind == debit.accountKind {
                debitID = id
                available = spendable
                debitStatus = status
            }
            if msisdn == credit.msisdn.value && accountKind == credit.accountKind {
                creditID = id
                creditStatus = status
            }
        }
        guard let debitID, debitStatus == "active" else { return .failure(.notRegistered) }
        if debit == credit || (kind == "p2p" && debit.msisdn == credit.msisdn) { return .failure(.sameAccount) }
        guard let creditID, creditStatus == "active" else { return .failure(.recipientNotRegistered) }
        guard self.limits.perTransaction.contains(amount.cents) else { return .failure(.limitExceeded) }
        if kind == "p2p" || kind == "withdrawal" {
            let today = try await self.debitsToday(tx, account: debitID)
            if today + amount.cents > self.limits.daily { return .failure(.limitExceeded) }
        }
        guard available >= amount.cents else { return .failure(.insufficientFunds) }
        return .success((debitID, creditID))
    }
}

extension WalletError {
    /// The refusal a stored code stands for (attempt counts and times are not stored).
    init(code: String) {
        switch code {
        case "not_registered": self = .notRegistered
        case "insufficient_funds": self = .insufficientFunds
        case "recipient_not_registered": self = .recipientNotRegistered
        case "same_account": self = .sameAccount
        case "limit_exceeded": self = .limitExceeded
        default: self = .invalidArgument(code)
        }
    }
}
