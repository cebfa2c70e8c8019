import Basics
import Foundation
import Postgres

/// A correction, reversal or PIN reset waiting for (or given) an approver's decision.
public struct LedgerRequest: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable {
        case adjustment, reversal
        case pinReset = "pin_reset"
        /// Erasure of a closed wallet's personal data (issue 31).
        case erase
    }
    public enum Direction: String, Sendable, Codable {
        /// Money into the customer's main account, out of suspense.
        case fromSuspense = "from_suspense"
        /// Money out of the customer's main account, into suspense.
        case toSuspense = "to_suspense"
    }

    public let id: Int64
    public let kind: Kind
    public let msisdn: String
    /// Cents; nil for a PIN reset.
    public let amount: Int64?
    public let direction: Direction?
    /// The send a reversal undoes.
    public let reference: String?
    /// The database login of the member of staff who asked.
    public let requestedBy: String
    public let reason: String
    public let requestedAt: Date
    /// `pending`, `approved` or `rejected`.
    public let status: String
    /// The approver whose decision closed it.
    public let decidedBy: String?
    public let decidedAt: Date?
    /// The transfer an approval posted.
    public let transfer: String?
    /// Approvals it takes: two above `LEDGER_DUAL_APPROVAL_ABOVE`, else one.
    public let approvalsNeeded: Int
    /// Approvals given so far.
    public let approvals: Int
}

/// Why a ledger request was not asked for or carried out. The database decides (four eyes, the
/// limits, the roles); these are its refusals, named.
public enum LedgerDeskError: Error, Sendable, Hashable, CustomStringConvertible {
    case noSuchRequest(Int64)
    case alreadyDecided(Int64, String)
    /// Four eyes: the person who asked may not decide.
    case sameOperator
    /// The login is not in the role this needs (`ussd_operator` to ask, `ussd_approver` to decide).
    case notPermitted(String)
    /// A second approval must come from a second approver.
    case alreadyApprovedByYou(Int64)
    /// An adjustment above `LEDGER_ADJUST_MAX`.
    case aboveAdjustmentLimit(String)
    case noSuchTransfer(String)
    case notASend(String)
    case alreadyReversed(String)
    /// A PIN reset for this number is already waiting for approval.
    case pinResetPending(String)
    /// The recipient no longer holds the money a reversal would take back.
    case recipientSpent(String)
    /// A debit correction larger than what the customer can spend.
    case insufficientFunds

    public var description: String {
        switch self {
        case .noSuchRequest(let id): return "no ledger request #\(id)"
        case .alreadyDecided(let id, let status): return "request #\(id) is already \(status)"
        case .sameOperator: return "the person who asked for this may not decide it: another approver must (four eyes)"
        case .notPermitted(let why): return why
        case .alreadyApprovedByYou(let id): return "you have already approved request #\(id): the second approval must come from another approver"
        case .aboveAdjustmentLimit(let why): return why
        case .noSuchTransfer(let reference): return "no transfer \(reference)"
        case .notASend(let reference): return "\(reference) is not a posted send: only sends between customers are reversed"
        case .alreadyReversed(let reference): return "\(reference) is already reversed, or a reversal of it is waiting for approval"
        case .pinResetPending(let msisdn): return "a PIN reset for \(msisdn) is already waiting for approval"
        case .recipientSpent(let msisdn): return "\(msisdn) no longer holds the money: nothing was reversed"
        case .insufficientFunds: return "the customer's available balance is less than the correction: nothing was taken"
        }
    }

    /// The database's refusal (SQLSTATE class `UL`, raised by migration 0014's checks) as a desk
    /// error; nil for any other failure.
    static func refusal(_ error: PostgresError, request id: Int64? = nil, reference: String? = nil) -> LedgerDeskError? {
        guard let words = error.refusal else { return nil }
        switch error.sqlState {
        case "UL001": return .noSuchRequest(id ?? 0)
        case "UL002": return .alreadyDecided(id ?? 0, words.hasSuffix("approved") ? "approved" : "rejected")
        case "UL003": return .sameOperator
        case "UL004": return .notPermitted(words)
        case "UL005": return .alreadyApprovedByYou(id ?? 0)
        case "UL006": return .recipientSpent(words.components(separatedBy: " ").first ?? "the recipient")
        case "UL007": return .insufficientFunds
        case "UL008": return .notASend(reference ?? words)
        case "UL009": return .aboveAdjustmentLimit(words)
        case "UL012": return .alreadyReversed(reference ?? words)
        default: return .notPermitted(words)
        }
    }
}

extension Wallet {
    /// Asks for a correction of a customer's main account against the suspense account. Nothing
    /// moves until an approver (two, above `LEDGER_DUAL_APPROVAL_ABOVE`) approves it; the database
    /// records who asked and refuses an amount above `LEDGER_ADJUST_MAX`.
    public func requestAdjustment(
        _ msisdn: MSISDN, amount: Amount, direction: LedgerRequest.Direction, by action: OperatorAction
    ) async throws -> LedgerRequest {
        guard amount.cents > 0 else { throw WalletError.invalidArgument("the amount must be positive") }
        return try await self.asking { tx in
            guard try await !tx.query("SELECT 1 FROM customers WHERE msisdn = \(msisdn.value)").isEmpty else { throw WalletError.notRegistered }
            let request = try Self.ledgerRequest(
                try await tx.query(
                    """
                    INSERT INTO ledger_requests (kind, msisdn, amount, direction, reason)
                    VALUES ('adjustment', \(msisdn.value), \(amount.cents), \(direction.rawValue), \(action.reason))
                    RETURNING \(unescaped: Self.requestColumns)
                    """
                ).single()!
            )
            try await Self.audit(
                tx, action, "ledger.adjustment_requested", msisdn: msisdn, before: nil,
                after: [
                    "request": String(request.id), "amount_cents": String(amount.cents), "direction": direction.rawValue,
                    "approvals_needed": String(request.approvalsNeeded),
                ]
            )
            return request
        }
    }

    /// Asks for a send to be reversed (its amount back from the recipient to the sender, the fee
    /// kept). Nothing moves until an approver approves it.
    public func requestReversal(of reference: String, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.asking(reference: reference) { tx in
            guard try await !tx.query("SELECT 1 FROM transfers WHERE id = \(reference)").isEmpty else { throw LedgerDeskError.noSuchTransfer(reference) }
            do {
                // The database fills in the send's sender and amount.
                let request = try Self.ledgerRequest(
                    try await tx.query(
                        """
                        INSERT INTO ledger_requests (kind, msisdn, reference, reason)
                        SELECT 'reversal', '', \(reference), \(action.reason)
                        WHERE NOT EXISTS (SELECT 1 FROM transfers WHERE resolves = \(reference) AND kind = 'reversal')
                        RETURNING \(unescaped: Self.requestColumns)
                        """
                    ).single() ?? { throw LedgerDeskError.alreadyReversed(reference) }()
                )
                try await Self.audit(
                    tx, action, "ledger.reversal_requested", msisdn: MSISDN(request.msisdn), before: nil,
                    after: [
                        "request": String(request.id), "reference": reference, "amount_cents": String(request.amount ?? 0),
                        "approvals_needed": String(request.approvalsNeeded),
                    ]
                )
                return request
            } catch let error as PostgresError where error.isUniqueViolation {
                throw LedgerDeskError.alreadyReversed(reference)
            }
        }
    }

    /// Asks for a customer's PIN to be reset. When an approver approves it, the next dial must set
    /// a new PIN before anything else, every PIN lock is lifted and the customer gets an SMS; for
    /// the cooling-off window after the new PIN is set, large sends and withdrawals are refused.
    public func requestPINReset(_ msisdn: MSISDN, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.asking { tx in
            guard try await !tx.query("SELECT 1 FROM customers WHERE msisdn = \(msisdn.value)").isEmpty else { throw WalletError.notRegistered }
            do {
                let request = try Self.ledgerRequest(
                    try await tx.query(
                        """
                        INSERT INTO ledger_requests (kind, msisdn, reason) VALUES ('pin_reset', \(msisdn.value), \(action.reason))
                        RETURNING \(unescaped: Self.requestColumns)
                        """
                    ).single()!
                )
                try await Self.audit(tx, action, "pin.reset_requested", msisdn: msisdn, before: nil, after: ["request": String(request.id)])
                return request
            } catch let error as PostgresError where error.isUniqueViolation {
                throw LedgerDeskError.pinResetPending(msisdn.value)
            }
        }
    }

    /// Records this login's approval of a pending request. The database refuses an approval by
    /// the one who asked, by a login outside `ussd_approver`, and a second one by the same
    /// approver; the approval that completes the count carries the request out in the same
    /// transaction (posts its transfer, queues the SMS, writes the audit rows). The request as it
    /// now stands: still `pending` while a second approver is needed.
    public func approve(_ id: Int64, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.deciding(id, "approve", action)
    }

    /// Turns a pending request down; nothing moves. Only an approver other than the one who asked.
    public func reject(_ id: Int64, by action: OperatorAction) async throws -> LedgerRequest {
        try await self.deciding(id, "reject", action)
    }

    private func deciding(_ id: Int64, _ decision: String, _ action: OperatorAction) async throws -> LedgerRequest {
        do {
            return try await self.postgres.transaction(maxAttempts: 5) { tx in
                try await tx.query("INSERT INTO ledger_decisions (request_id, decision, reason) VALUES (\(id), \(decision), \(action.reason))")
                return try Self.ledgerRequest(
                    try await tx.query("SELECT \(unescaped: Self.requestColumns) FROM ledger_requests WHERE id = \(id)").single()!
                )
            }
        } catch let error as PostgresError {
            if error.sqlState == "UL002", let current = try await self.ledgerRequest(id) {
                throw LedgerDeskError.alreadyDecided(id, current.status)
            }
            // A login outside ussd_approver may not even write a decision.
            if error.sqlState == "42501" { throw LedgerDeskError.notPermitted("only an approver (ussd_approver) may decide a request") }
            let reference = try? await self.ledgerRequest(id)?.reference
            throw LedgerDeskError.refusal(error, request: id, reference: reference) ?? error
        }
    }

    /// Runs an asking transaction, the database's refusals named.
    func asking(reference: String? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> LedgerRequest) async throws
        -> LedgerRequest
    {
        do {
            return try await self.postgres.transaction { tx in try await body(tx) }
        } catch let error as PostgresError {
            if error.sqlState == "42501" {
                throw LedgerDeskError.notPermitted("only staff (ussd_operator) may ask for a correction, a reversal or a PIN reset")
            }
            throw LedgerDeskError.refusal(error, reference: reference) ?? error
        }
    }

    /// One request, or nil.
    public func ledgerRequest(_ id: Int64) async throws -> LedgerRequest? {
        try await self.postgres.query("SELECT \(unescaped: Self.requestColumns) FROM ledger_requests WHERE id = \(id)").single().map(Self.ledgerRequest)
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

    static let requestColumns = """
        id, kind, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.subject = ledger_requests.subject), '[erased]'), amount, direction, reference, requested_by, reason, requested_at, status, decided_by, decided_at, transfer_id,
        approvals_needed::int, (SELECT count(*) FROM ledger_decisions d WHERE d.request_id = ledger_requests.id AND d.decision = 'approve')::int
        """

    static func ledgerRequest(_ row: PostgresRow) throws -> LedgerRequest {
        let (id, kind, msisdn, amount, direction, reference, requestedBy, reason, requestedAt, status, decidedBy, decidedAt, transfer) =
            try row.decode(
                (Int64, String, String, Int64?, String?, String?, String, String, Date, String, String?, Date?, String?).self
            )
        return LedgerRequest(
            id: id, kind: try Self.status(kind), msisdn: msisdn, amount: amount, direction: try direction.map { try Self.status($0) },
            reference: reference, requestedBy: requestedBy, reason: reason, requestedAt: requestedAt, status: status, decidedBy: decidedBy,
            decidedAt: decidedAt, transfer: transfer, approvalsNeeded: try row.decode(Int.self, column: 13),
            approvals: try row.decode(Int.self, column: 14)
        )
    }
}
