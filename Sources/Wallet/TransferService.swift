import Basics
import Foundation
import Postgres

extension Wallet {
    /// Sends money from one customer's main account to another's, once per key, with `fee` (the
    /// tariff's, shown to the sender before the PIN) posted to the fee-income account in the same
    /// transaction. A replayed key returns the first receipt, fee included.
    public func send(from sender: MSISDN, to recipient: MSISDN, amount: Amount, fee: Amount = .zero, key: IdempotencyKey) async throws -> TransferReceipt {
        try await self.move(
            kind: "p2p", key: key, amount: amount, fee: fee, initiator: sender,
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

    /// One movement: the `wallet_move` function (migrations 0002, 0009) locks both accounts in id
    /// order, looks for a replay, applies the rules, inserts the transfer and queues the receipts
    /// inside one statement. A refusal is recorded under the key, so a retry is refused the same
    /// way. Concurrent movements share a statement and a commit (``MoveBatcher``, migration 0010);
    /// alone, or after a batch that failed, deadlocks and serialization failures are retried.
    ///
    /// With `pin`, the PIN is checked first in the same statement (migration 0017): its outcomes
    /// throw ``PINInMovement``, and nothing is moved or recorded under the key.
    func move(
        kind: String, key: IdempotencyKey, amount: Amount, fee: Amount = .zero, initiator: MSISDN, debit: Party, credit: Party,
        pin: PINInMovement.Check? = nil
    ) async throws -> TransferReceipt {
        guard fee.cents >= 0 else { throw WalletError.invalidArgument("a fee is never negative") }
        let fingerprint = try await self.fingerprint("\(kind)|\(debit.msisdn)|\(debit.accountKind)|\(credit.msisdn)|\(credit.accountKind)|\(amount.cents)")
        var call = MoveCall(
            k: key.value, t: kind, f: fingerprint, dm: debit.msisdn.value, dk: debit.accountKind, cm: credit.msisdn.value, ck: credit.accountKind,
            a: amount.cents, fee: fee.cents
        )
        if let pin {
            call.pc = pin.customer
            call.pv = pin.value
            call.pa = PINPolicy.attemptsBeforeLock
            call.ps = pin.coolingSince.timeIntervalSince1970
        }
        let row = try await self.moves.submit(call)
        let (outcome, storedKind, cents, created, main, savings, held) = try row.decode((String, String?, Int64?, Date?, Int64?, Int64?, Int64?).self)
        let charged = try row.decode(Int64?.self, column: 7) ?? 0
        if let answer = PINInMovement(rawValue: outcome) { throw answer }
        guard outcome == "posted" || outcome == "replayed", let storedKind, let cents, let created else {
            throw outcome == WalletError.idempotencyKeyReused.code ? WalletError.idempotencyKeyReused : WalletError(code: outcome)
        }
        let balances = Balances(main: Amount(cents: main ?? 0), savings: Amount(cents: savings ?? 0), held: Amount(cents: held ?? 0))
        return TransferReceipt(key: key.value, kind: storedKind, amount: Amount(cents: cents), fee: Amount(cents: charged), createdAt: created, balances: balances)
    }

    /// One movement in its own transaction, retried on transient failures.
    static func moveOne(_ call: MoveCall, postgres: PostgresClient, limits: WalletLimits) async throws -> PostgresRow {
        try await Self.retryingTransient {
            try await postgres.query(Self.singleStatement(call, limits: limits)).single()!
        }
    }

    /// The same on a connection a group-commit lane holds on the pool's thread (a call that came
    /// alone while the lane was busy), with the same retries: what it throws is the call's answer.
    static func moveOne(_ call: MoveCall, on connection: BlockingPostgresConnection, limits: WalletLimits) throws -> PostgresRow {
        var attempt = 1
        while true {
            do {
                return try connection.query(Self.singleStatement(call, limits: limits)).single()!
            } catch let error as PostgresError where attempt < 5 && Self.isRetried(error) {
                attempt += 1
            } catch let error as PostgresError where error.constraint == "customer_balance_never_negative" {
                throw WalletError.insufficientFunds
            }
        }
    }

    private static func singleStatement(_ call: MoveCall, limits: WalletLimits) -> PostgresQuery {
        """
        SELECT outcome, kind, amount, created_at, main, savings, held, fee FROM wallet_move(
            \(call.k), \(call.t), \(call.f), \(call.dm), \(call.dk), \(call.cm), \(call.ck),
            \(call.a), \(limits.perTransaction.lowerBound), \(limits.perTransaction.upperBound), \(limits.daily), \(call.fee),
            \(call.pc), \(call.pv), \(call.pa)::int, to_timestamp(\(call.ps)))
        """
    }

    /// Several movements in one statement and one commit, their rows in the same order.
    static func moveBatch(_ calls: [MoveCall], postgres: PostgresClient, limits: WalletLimits) async throws -> [PostgresRow] {
        Array(try await postgres.query(try Self.batchStatement(calls, limits: limits)))
    }

    /// The same on a connection a group-commit lane holds on the pool's thread.
    static func moveBatch(_ calls: [MoveCall], on connection: BlockingPostgresConnection, limits: WalletLimits) throws -> [PostgresRow] {
        Array(try connection.query(try Self.batchStatement(calls, limits: limits)))
    }

    private static func batchStatement(_ calls: [MoveCall], limits: WalletLimits) throws -> PostgresQuery {
        let moves = String(decoding: try JSONEncoder().encode(calls), as: UTF8.self)
        return """
            SELECT outcome, kind, amount, created_at, main, savings, held, fee FROM wallet_move_batch(
                \(moves)::jsonb, \(limits.perTransaction.lowerBound), \(limits.perTransaction.upperBound), \(limits.daily))
            """
    }

    /// Runs `body` again after a deadlock, a serialization failure or a racing insert of the same
    /// key (the rerun then sees the committed row and replays it); a CHECK the rules should
    /// have prevented surfaces as insufficient funds.
    func retryingTransient<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        try await Self.retryingTransient(body)
    }

    /// A deadlock, a serialization failure, or a racing insert of the same key (the rerun then
    /// sees the committed row and replays it).
    static func isRetried(_ error: PostgresError) -> Bool {
        error.isTransient || (error.isUniqueViolation && error.constraint == "transfers_pkey")
    }

    package static func retryingTransient<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch let error as PostgresError where attempt < 5 && Self.isRetried(error) {
                attempt += 1
            } catch let error as PostgresError where error.constraint == "customer_balance_never_negative" {
                throw WalletError.insufficientFunds
            }
        }
    }
}

extension WalletError {
    /// The refusal a stored code stands for (attempt counts and times are not stored).
    package init(code: String) {
        switch code {
        case "not_registered": self = .notRegistered
        case "insufficient_funds": self = .insufficientFunds
        case "recipient_not_registered": self = .recipientNotRegistered
        case "same_account": self = .sameAccount
        case "limit_exceeded": self = .limitExceeded
        case "recipient_limit": self = .recipientLimit
        case "blocked": self = .blocked
        case "idempotency_key_reused": self = .idempotencyKeyReused
        default: self = .invalidArgument(code)
        }
    }
}
