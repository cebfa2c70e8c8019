import Basics
import Foundation
import GatewayActions
import GatewayTelemetry
import Jobs
import Logging
import MoMo
import MPesaBook
import ServiceLifecycle
import Synchronization
import Wallet

/// Deposits by MTN MoMo's request to pay and withdrawals by its transfer, with the guarantees
/// M-Pesa's rail has: a deposit is credited once and only after MoMo's status query says
/// SUCCESSFUL (its callback is unsigned: a hint that asks at once), a payout is paid once (every
/// attempt carries the same `X-Reference-Id`, derived from the movement's own key, and MoMo refuses
/// a repeat), an unknown outcome is settled by the status query, and disagreements go to review.
///
/// The records are the ledger's deposits and payouts (``MPesaBook``, the book of mobile-money
/// movements): a deposit's reference is its `checkout_request_id`, a payout's its `conversation_id`.
public final class MoMoService: MobileMoneyChannel, Service {
    let client: MoMoClient
    let book: MPesaBook
    let metrics: MetricCache
    /// The deployment's currency: the ledger's minor units, and MoMo's amounts in its decimals.
    let currency: Currency
    let promptDelay: Duration
    let reconcileInterval: Duration
    /// When the reconciler gives up on a payout and hands it to a person.
    let payoutReview: (checks: Int, age: Duration)
    /// How long a reconciler's claim lasts: two full MoMo calls and a margin.
    let claimLease: Duration
    let logger: Logger
    /// Requests queued by hops, finished even at shutdown.
    private let jobs = JobQueue(atShutdown: .finish)
    /// Movements with a request queued or running in this process.
    private let inFlight = Mutex(Set<String>())

    public init(
        client: MoMoClient, book: MPesaBook, currency: Currency, promptDelay: Duration, reconcileInterval: Duration = .seconds(15),
        payoutReview: (checks: Int, age: Duration) = (12, .seconds(24 * 3600)), metrics: MetricCache, logger: Logger
    ) {
        self.client = client
        self.book = book
        self.currency = currency
        self.promptDelay = promptDelay
        self.reconcileInterval = reconcileInterval
        self.payoutReview = payoutReview
        self.claimLease = client.configuration.requestTimeout * 2 + .seconds(10)
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.jobs.run() }
            group.addTask {
                await periodically(every: self.reconcileInterval) {
                    do {
                        _ = try await self.reconcile()
                    } catch {
                        self.logger.warning("MoMo reconciliation pass failed", metadata: ["error": .string(safeDescription(of: error))])
                    }
                }
            }
        }
    }

    /// Runs `job` later on the service's queue, once per `name` at a time in this process.
    func later(_ name: String, _ job: @escaping @Sendable () async -> Void) {
        guard self.inFlight.withLock({ $0.insert(name).inserted }) else { return }
        let trace = HopTrace.current
        self.jobs.add {
            await HopTrace.$current.withValue(trace) { await job() }
            _ = self.inFlight.withLock { $0.remove(name) }
        }
    }

    func isInFlight(_ name: String) -> Bool { self.inFlight.withLock { $0.contains(name) } }

    /// MoMo's amount for `amount`: the deployment's major units with its decimals.
    func momoAmount(_ amount: Amount) -> String? { MoMoAmount.string(minorUnits: amount.cents, decimals: self.currency.minorUnits) }

    /// The `X-Reference-Id` of a deposit (from its idempotency key) and of a payout (from its id).
    static func reference(deposit key: String) -> MoMoReference { MoMoReference(idempotencyKey: "deposit:" + key) }
    static func reference(payout id: String) -> MoMoReference { MoMoReference(idempotencyKey: "payout:" + id) }
    /// The `externalId` each request carries, which MoMo's answers must name back.
    static func externalID(deposit: Deposit) -> String { "deposit-\(deposit.id)" }
    static func externalID(payout: Payout) -> String { "payout-" + String(payout.id.suffix(40)).filter { $0.isLetter || $0.isNumber || $0 == "-" } }

    // MARK: Deposit

    public func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome {
        guard amount.cents > 0, self.momoAmount(amount) != nil else { return .outsideLimits }
        let deposit = try await self.book.beginDeposit(msisdn, amount: amount, key: key)
        guard deposit.status == .pending else { return .prompted }
        // The reference is known before the request leaves, and stored first: a callback, the
        // reconciler and a retry all find the deposit by it, and a retry sends the same one.
        let reference = Self.reference(deposit: deposit.key)
        if deposit.checkoutRequestID == nil { try await self.book.recordCheckout(depositID: deposit.id, checkoutRequestID: reference.uuidString) }
        self.later("deposit:\(deposit.id)") {
            try? await Task.sleep(for: self.promptDelay)
            await self.requestToPay(deposit, reference)
        }
        return .prompted
    }

    func requestToPay(_ deposit: Deposit, _ reference: MoMoReference) async {
        do {
            guard let phone = deposit.msisdn, let amount = self.momoAmount(deposit.amount) else { throw WalletError.notRegistered }
            try await self.client.requestToPay(
                reference: reference, amount: amount, externalID: Self.externalID(deposit: deposit), payer: phone.value, payerMessage: "Deposit to your wallet",
                payeeNote: "Wallet deposit")
            self.count("momo_request_to_pay_total", "accepted")
        } catch let error as MoMoError where error == .duplicateReference {
            // An earlier attempt got there: its prompt is the one.
            self.count("momo_request_to_pay_total", "duplicate")
        } catch let error as MoMoError where !error.outcomeUnknown {
            // Refused. An earlier attempt under this reference may still have prompted the
            // customer: the deposit fails only when MoMo has no request under it.
            self.count("momo_request_to_pay_total", "refused")
            self.logger.warning("MoMo request to pay refused", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(error.description)])
            if (try? await Self.known({ () async throws(MoMoError) in try await self.client.requestToPayStatus(reference) })) == .some(nil) {
                _ = try? await self.book.failDeposit(.checkout(reference.uuidString), code: DepositFailure.notSentCode, text: error.description)
            }
        } catch {
            // No answer: the reconciler's status query says whether MoMo has it.
            self.count("momo_request_to_pay_total", "unknown")
            self.logger.warning("MoMo request to pay unanswered", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
        }
    }

    // MARK: Withdraw

    public func withdraw(_ msisdn: MSISDN, amount: Amount, fee: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome {
        guard amount.cents > 0, self.momoAmount(amount) != nil else { return .outsideLimits }
        let payout = try await self.book.reserveWithdrawal(msisdn, amount: amount, fee: fee, key: key)
        if payout.status == .reserved {
            // Its reference first: MoMo's callback may overtake the transfer's own answer.
            try await self.book.recordPayoutReference(payout.id, reference: Self.reference(payout: payout.id).uuidString)
            self.later("payout:" + payout.id) { await self.transfer(payout) }
        }
        return .paying(available: try await self.book.wallet.balances(msisdn).available)
    }

    /// Sends the transfer of a reserved payout, always under the payout's own reference.
    func transfer(_ payout: Payout) async {
        let reference = Self.reference(payout: payout.id)
        // Sent only while the payout is open: a settled one (or one a person holds) never again.
        guard let current = try? await self.book.payout(id: payout.id), [Payout.Status.reserved, .sent, .unknown].contains(current.status) else {
            self.logger.warning("MoMo transfer not sent: the payout is no longer open", metadata: ["payout": .string(payout.id)])
            return
        }
        do {
            guard let phone = payout.msisdn, let amount = self.momoAmount(payout.amount) else { throw WalletError.notRegistered }
            try await self.client.transfer(
                reference: reference, amount: amount, externalID: Self.externalID(payout: payout),
                payee: phone.value, payerMessage: "Wallet withdrawal", payeeNote: "Wallet withdrawal")
            try await self.book.markWithdrawalSent(payout.id, conversationID: reference.uuidString)
            self.count("momo_transfer_total", "accepted")
        } catch let error as MoMoError where error == .duplicateReference {
            // The first transfer was taken: the status query settles it.
            self.count("momo_transfer_total", "duplicate")
            _ = try? await self.book.markWithdrawalSent(payout.id, conversationID: reference.uuidString)
        } catch let error as MoMoError where !error.outcomeUnknown {
            // Refused outright. The hold is released only if no attempt ever went unanswered.
            self.count("momo_transfer_total", "refused")
            self.logger.warning("MoMo transfer refused", metadata: ["payout": .string(payout.id), "error": .string(error.description)])
            _ = try? await self.book.refuseWithdrawal(payout.id, code: -1, text: error.description)
        } catch {
            // No answer: the money may have moved. The hold stays; the status query decides.
            self.count("momo_transfer_total", "unknown")
            try? await self.book.markPayoutOutcomeUnknown(payout.id)
            self.logger.warning("MoMo transfer unanswered", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
        }
    }

    func count(_ label: String, _ outcome: String) {
        self.metrics.count(label, [("outcome", outcome)])
    }
}
