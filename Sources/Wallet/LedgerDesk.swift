import Foundation
import Postgres

/// A correction or reversal waiting for (or given) a second operator's decision.
public struct LedgerRequest: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case adjustment, reversal }
    public enum Direction: String, Sendable, Codable {
        /// Money into the customer's main account, out of suspense.
        case fromSuspense = "from_suspense"
        /// Money out of the customer's main account, into suspense.
        case toSuspense = "to_suspense"
    }

    public let id: Int64
    public let kind: Kind
    public let msisdn: String
    /// Cents.
    public let amount: Int64
    public let direction: Direction?
    /// The send a reversal undoes.
    public let reference: String?
    public let requestedBy: String
    public let reason: String
    public let requestedAt: Date
    /// `pending`, `approved` or `rejected`.
    public let status: String
    public let decidedBy: String?
    public let decidedAt: Date?
    /// The transfer an approval posted.
    public let transfer: String?
}

/// Why a ledger request was not carried out.
public enum LedgerDeskError: Error, Sendable, Hashable, CustomStringConvertible {
    case noSuchRequest(Int64)
    case alreadyDecided(Int64, String)
    /// Maker-checker: the operator who asked may not approve.
    case sameOperator
    case noSuchTransfer(String)
    case notASend(String)
    case alreadyReversed(String)
    /// The recipient no longer holds the money a reversal would take back.
    case recipientSpent(String)
    /// A debit correction larger than what the customer can spend.
    case insufficientFunds

    public var description: String {
        switch self {
        case .noSuchRequest(let id): return "no ledger request #\(id)"
        case .alreadyDecided(let id, let status): return "request #\(id) is already \(status)"
        case .sameOperator: return "the operator who asked for this may not approve it: another operator must (maker-checker)"
        case .noSuchTransfer(let reference): return "no transfer \(reference)"
        case .notASend(let reference): return "\(reference) is not a posted send: only sends between customers are reversed"
        case .alreadyReversed(let reference): return "\(reference) is already reversed, or a reversal of it is waiting for approval"
        case .recipientSpent(let msisdn): return "\(msisdn) no longer holds the money: nothing was reversed"
        case .insufficientFunds: return "the customer's available balance is less than the correction: nothing was taken"
        }
    }
}

extension Wallet {
    /// Asks for a correction of a customer's main account against the suspense account. Nothing
    /// moves until another operator approves it (``approve(_:by:)``).
    public func requestAdjustment(
        _ msisdn: MSISDN, amount: Amount, direction: LedgerRequest.Direction, by action: OperatorAction
    ) async throws -> LedgerRequest {
        guard amount.cents > 0 else { throw WalletError.invalidArgument("the amount must be positive") }
        return try await self.postgres.transaction { tx in
            guard try await !tx.query("SELECT 1 FROM customers WHERE msisdn = \(msisdn.value)").isEmpty else { throw WalletError.notRegistered }
            let request = try Self.ledgerRequest(
                try await tx.query(
                    """
                    INSERT INTO ledger_requests (kind, msisdn, amount, direction, requested_by, reason)
                    VALUES ('adjustment', \(msisdn.value), \(amount.cents), \(direction.rawValue), \(action.operatorName), \(action.reason))
                    RETURNING \(unescaped: Self.requestColumns)
                    """
                ).single()!
            )
            try await Self.audit(
                tx, action, "ledger.adjustment_requested", msisdn: msisdn, before: nil,
                after: ["request": String(request.id), "amount_cents": String(amount.cents), "direction": direction.rawValue]
            )
            return request
        }
    }

    /// Asks for a send to be reversed (its amount back from the recipient to the sender, the fee
    /// kept). Nothing moves until another operator approves it.
    public func requestReversal(of reference: String, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.postgres.transaction { tx in
            guard
                let row = try await tx.query(
                    """
                    SELECT t.kind, t.status, t.amount, c.msisdn FROM transfers t JOIN accounts a ON a.id = t.debit_account
                    LEFT JOIN customers c ON c.id = a.customer_id WHERE t.id = \(reference)
                    """
                ).single()
            else { throw LedgerDeskError.noSuchTransfer(reference) }
            let (kind, status, amount, sender) = try row.decode((String, String, Int64, String?).self)
            guard kind == "p2p", status == "posted", let sender else { throw LedgerDeskError.notASend(reference) }
            do {
                let request = try Self.ledgerRequest(
                    try await tx.query(
                        """
                        INSERT INTO ledger_requests (kind, msisdn, amount, reference, requested_by, reason)
                        SELECT 'reversal', \(sender), \(amount), \(reference), \(action.operatorName), \(action.reason)
                        WHERE NOT EXISTS (SELECT 1 FROM transfers WHERE resolves = \(reference) AND kind = 'reversal')
                        RETURNING \(unescaped: Self.requestColumns)
                        """
                    ).single() ?? { throw LedgerDeskError.alreadyReversed(reference) }()
                )
                try await Self.audit(
                    tx, action, "ledger.reversal_requested", msisdn: MSISDN(sender), before: nil,
                    after: ["request": String(request.id), "reference": reference, "amount_cents": String(amount)]
                )
                return request
            } catch let error as PostgresError where error.isUniqueViolation {
                throw LedgerDeskError.alreadyReversed(reference)
            }
        }
    }

    /// Carries out a pending request: posts its transfer, marks it approved and writes the audit
    /// row, in one transaction. The database refuses an approval by the operator who asked.
    public func approve(_ id: Int64, by action: OperatorAction) async throws -> LedgerRequest {
        let outcome: Result<LedgerRequest, LedgerDeskError> = try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT \(unescaped: Self.requestColumns) FROM ledger_requests WHERE id = \(id) FOR UPDATE").single()
            else {
                return .failure(.noSuchRequest(id))
            }
            let request = try Self.ledgerRequest(row)
            guard request.status == "pending" else { return .failure(.alreadyDecided(id, request.status)) }
            guard request.requestedBy.lowercased() != action.operatorName.lowercased() else { return .failure(.sameOperator) }
            let transfer: String
            switch request.kind {
            case .adjustment:
                transfer = "adjustment:\(id)"
                guard let direction = request.direction, let msisdn = MSISDN(request.msisdn) else {
                    throw ProviderRecordError.corrupt("request \(id)")
                }
                // Main account and suspense, locked in id order like every movement.
                let accounts = try await tx.query(
                    """
                    SELECT a.id, a.kind, a.balance - a.held FROM accounts a LEFT JOIN customers c ON c.id = a.customer_id
                    WHERE (c.msisdn = \(request.msisdn) AND a.kind = 'main') OR (a.customer_id IS NULL AND a.kind = 'suspense')
                    ORDER BY a.id FOR UPDATE OF a
                    """
                ).map { try $0.decode((Int64, String, Int64).self) }
                guard let main = accounts.first(where: { $0.1 == "main" }), let suspense = accounts.first(where: { $0.1 == "suspense" }) else {
                    throw WalletError.notRegistered
                }
                if direction == .toSuspense && main.2 < request.amount { return .failure(.insufficientFunds) }
                let (debit, credit) = direction == .fromSuspense ? (suspense.0, main.0) : (main.0, suspense.0)
                try await tx.query(
                    """
                    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
                    VALUES (\(transfer), \(debit), \(credit), \(request.amount), 'adjustment', 'posted',
                            jsonb_build_object('request', \(id), 'direction', \(direction.rawValue)::text))
                    """
                )
                try await self.queueSMS(
                    tx, to: msisdn, template: "adjustment",
                    params: ["amount": String(request.amount), "reference": "ADJ\(id)", "reason": direction == .fromSuspense ? "credit" : "debit"],
                    dedupe: transfer
                )
            case .reversal:
                guard let reference = request.reference else { throw ProviderRecordError.corrupt("request \(id)") }
                transfer = "reversal:\(reference)"
                guard
                    let send = try await tx.query(
                        """
                        SELECT t.debit_account, t.credit_account, t.amount, sc.msisdn, rc.msisdn FROM transfers t
                        JOIN accounts sa ON sa.id = t.debit_account JOIN customers sc ON sc.id = sa.customer_id
                        JOIN accounts ra ON ra.id = t.credit_account JOIN customers rc ON rc.id = ra.customer_id
                        WHERE t.id = \(reference) AND t.kind = 'p2p' AND t.status = 'posted'
                        """
                    ).single()
                else { return .failure(.notASend(reference)) }
                let (senderAccount, recipientAccount, amount, sender, recipient) = try send.decode((Int64, Int64, Int64, String, String).self)
                var spendable: Int64 = 0
                for locked in try await tx.query(
                    "SELECT id, balance - held FROM accounts WHERE id IN (\(senderAccount), \(recipientAccount)) ORDER BY id FOR UPDATE"
                ) {
                    let (account, available) = try locked.decode((Int64, Int64).self)
                    if account == recipientAccount { spendable = available }
                }
                if spendable < amount { return .failure(.recipientSpent(recipient)) }
                do {
                    try await tx.query(
                        """
                        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, resolves, metadata)
                        VALUES (\(transfer), \(recipientAccount), \(senderAccount), \(amount), 'reversal', 'posted', \(reference), jsonb_build_object('request', \(id)))
                        """
                    )
                } catch let error as PostgresError where error.isUniqueViolation {
                    return .failure(.alreadyReversed(reference))
                }
                let ref = "REV\(id)"
                try await self.queueSMS(
                    tx, to: MSISDN(sender)!, template: "reversal",
                    params: ["amount": String(amount), "to": recipient, "reference": ref, "reason": "returned"],
                    dedupe: transfer + ":returned"
                )
                try await self.queueSMS(
                    tx, to: MSISDN(recipient)!, template: "reversal",
                    params: ["amount": String(amount), "from": sender, "reference": ref, "reason": "taken"],
                    dedupe: transfer + ":taken"
                )
            }
            let decided = try Self.ledgerRequest(
                try await tx.query(
                    """
                    UPDATE ledger_requests SET status = 'approved', decided_by = \(action.operatorName), decided_at = now(),
                        decision_reason = \(action.reason), transfer_id = \(transfer)
                    WHERE id = \(id) RETURNING \(unescaped: Self.requestColumns)
                    """
                ).single()!
            )
            try await Self.audit(
                tx, action, "ledger.\(request.kind.rawValue)_approved", msisdn: MSISDN(request.msisdn),
                before: ["request": String(id), "status": "pending", "requested_by": request.requestedBy],
                after: ["request": String(id), "status": "approved", "transfer": transfer, "amount_cents": String(request.amount)]
            )
            return .success(decided)
        }
        return try outcome.get()
    }

    /// Turns a pending request down; nothing moves.
    public func reject(_ id: Int64, by action: OperatorAction) async throws -> LedgerRequest {
        let outcome: Result<LedgerRequest, LedgerDeskError> = try await self.postgres.transaction { tx in
            guard let row = try await tx.query("SELECT \(unescaped: Self.requestColumns) FROM ledger_requests WHERE id = \(id) FOR UPDATE").single()
            else {
                return .failure(.noSuchRequest(id))
            }
            let request = try Self.ledgerRequest(row)
            guard request.status == "pending" else { return .failure(.alreadyDecided(id, request.status)) }
            let decided = try Self.ledgerRequest(
                try await tx.query(
                    """
                    UPDATE ledger_requests SET status = 'rejected', decided_by = \(action.operatorName), decided_at = now(), decision_reason = \(action.reason)
                    WHERE id = \(id) RETURNING \(unescaped: Self.requestColumns)
                    """
                ).single()!
            )
            try await Self.audit(
                tx, action, "ledger.\(request.kind.rawValue)_rejected", msisdn: MSISDN(request.msisdn),
                before: ["request": String(id), "status": "pending"], after: ["request": String(id), "status": "rejected"]
            )
            return .success(decided)
        }
        return try outcome.get()
    }

    /// Requests, newest first: the pending ones only, or all.
    public func ledgerRequests(pendingOnly: Bool = true, limit: Int = 100) async throws -> [LedgerRequest] {
        try await self.postgres.query(
            """
            SELECT \(unescaped: Self.requestColumns) FROM ledger_requests WHERE \(unescaped: pendingOnly ? "status = 'pending'" : "true")
            ORDER BY id DESC LIMIT \(max(1, min(limit, 10_000)))
            """
        ).map(Self.ledgerRequest)
    }

    static let requestColumns =
        "id, kind, msisdn, amount, direction, reference, requested_by, reason, requested_at, status, decided_by, decided_at, transfer_id"

    static func ledgerRequest(_ row: PostgresRow) throws -> LedgerRequest {
        let (id, kind, msisdn, amount, direction, reference, requestedBy, reason, requestedAt, status, decidedBy, decidedAt, transfer) =
            try row.decode(
                (Int64, String, String, Int64, String?, String?, String, String, Date, String, String?, Date?, String?).self
            )
        return LedgerRequest(
            id: id, kind: try Self.status(kind), msisdn: msisdn, amount: amount, direction: try direction.map { try Self.status($0) },
            reference: reference, requestedBy: requestedBy, reason: reason, requestedAt: requestedAt, status: status, decidedBy: decidedBy,
            decidedAt: decidedAt, transfer: transfer
        )
    }
}
