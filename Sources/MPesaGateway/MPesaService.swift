import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Jobs
import Logging
import Menus
import Metrics
import MPesa
import MPesaBook
import ServiceLifecycle
import Synchronization
import Wallet

/// Deposits by STK push and withdrawals by B2C, the callbacks that settle them, and the
/// reconciler that settles what no callback did.
///
/// The USSD reply never waits for Daraja: the deposit is recorded, the session ENDs, and the push
/// leaves `stkDelay` later from this service's own task group (as a `Service` it drains queued work
/// on graceful shutdown). Whatever a crash loses is picked up by the reconciler: a payout still
/// `reserved` is sent again with the same OriginatorConversationID (Daraja refuses a duplicate, so
/// that cannot pay twice); a deposit whose push never got a CheckoutRequestID is failed.
public final class MPesaService: MobileMoneyChannel, Service {
    let daraja: DarajaClient
    /// M-Pesa's records beside the ledger, and through it the ledger.
    let book: MPesaBook
    /// What the service records: callbacks, reconciliation, status answers.
    let metrics: MetricCache
    var wallet: Wallet { self.book.wallet }
    let stkDelay: Duration
    let reconcileInterval: Duration
    /// How often the float is asked for; nil never (tests ask with ``checkFloat(interval:)``).
    let floatCheckInterval: Duration?
    /// When the reconciler gives up on a payout and hands it to a person.
    let payoutReview: (checks: Int, age: Duration)
    /// How long a reconciler's claim on a deposit or payout lasts: two full Daraja calls and a margin, so
    /// no two replicas ever work one at once.
    let claimLease: Duration
    /// When an accepted paybill validation without its confirmation is reported.
    let paybillUnconfirmedAfter: Duration
    /// How paybill confirmations are verified.
    let paybill: PaybillRules
    /// The reconciler's clock (tests pass one that is ahead).
    let now: @Sendable () -> Date
    let logger: Logger

    /// Where a confirmed paybill payment may go, and how long its verification may take.
    public struct PaybillRules: Sendable {
        /// `MPESA_C2B_MAX_AMOUNT`: above it a confirmed payment goes to suspense and review.
        public var maxAmount: Amount
        /// `MPESA_C2B_REVIEW_AFTER_MINUTES`: a confirmation Safaricom has not confirmed by then goes
        /// to review and is no longer asked about.
        public var reviewAfter: Duration

        public init(maxAmount: Amount = .shillings(150_000), reviewAfter: Duration = .seconds(3600)) {
            self.maxAmount = maxAmount
            self.reviewAfter = reviewAfter
        }
    }
    /// Pushes and payouts queued by requests, finished even at shutdown.
    private let jobs = JobQueue(atShutdown: .finish)

    public init(
        daraja: DarajaClient, book: MPesaBook, stkDelay: Duration, reconcileInterval: Duration = .seconds(15), floatCheckInterval: Duration? = nil,
        payoutReview: (checks: Int, age: Duration) = (12, .seconds(24 * 3600)), paybillUnconfirmedAfter: Duration = .seconds(600),
        paybill: PaybillRules = PaybillRules(), now: @escaping @Sendable () -> Date = Date.init, metrics: MetricCache, logger: Logger
    ) {
        self.metrics = metrics
        self.paybillUnconfirmedAfter = paybillUnconfirmedAfter
        self.paybill = paybill
        self.now = now
        self.daraja = daraja
        self.book = book
        self.stkDelay = stkDelay
        self.reconcileInterval = reconcileInterval
        self.floatCheckInterval = floatCheckInterval
        self.payoutReview = payoutReview
        self.claimLease = daraja.configuration.requestTimeout * 2 + .seconds(10)
        self.logger = logger
    }

    /// Runs queued pushes and payouts, and a reconciliation pass every `reconcileInterval`, until
    /// graceful shutdown; work already queued is finished first.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.jobs.run() }
            group.addTask {
                await periodically(every: self.reconcileInterval) {
                    do {
                        _ = try await self.reconcile()
                    } catch {
                        self.logger.warning("reconciliation pass failed", metadata: ["error": .string(safeDescription(of: error))])
                    }
                }
            }
            if let interval = self.floatCheckInterval {
                group.addTask {
                    // The first check soon after start-up (the slot keeps it to one per interval),
                    // then a look every tenth of the interval for a slot no replica took yet.
                    while !Task.isShuttingDownGracefully && !Task.isCancelled {
                        await self.checkFloat(interval: interval)
                        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval / 10) }
                    }
                }
            }
        }
    }

    func later(_ job: @escaping @Sendable () async -> Void) {
        // In the trace of the request that queued it: the STK push or B2C of a hop names the hop.
        let trace = HopTrace.current
        self.jobs.add { await HopTrace.$current.withValue(trace) { await job() } }
    }

    // MARK: Deposit

    public func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome {
        guard amount.cents % 100 == 0, (1...250_000).contains(amount.cents / 100) else { return .outsideLimits }
        let deposit = try await self.book.beginDeposit(msisdn, amount: amount, key: key)
        // The same key finds the same deposit. Its push is queued once per process; once the
        // CheckoutRequestID is stored it is never pushed again. (A push whose outcome was unknown
        // leaves none, so a later run with the same key, e.g. an SMS re-run after a crash, pushes
        // again; a payment for the first prompt then matches nothing and lands in mpesa_review.)
        if deposit.status == .pending, deposit.checkoutRequestID == nil, self.inFlight.claim("deposit:\(deposit.id)") {
            self.later {
                await self.push(deposit)
                self.inFlight.release("deposit:\(deposit.id)")
            }
        }
        return .prompted
    }

    /// Provider requests queued or running in this process, so none is queued twice at once.
    let inFlight = InFlight()

    func push(_ deposit: Deposit) async {
        try? await Task.sleep(for: self.stkDelay)
        do {
            guard let phone = deposit.msisdn else { throw WalletError.notRegistered }
            let accepted = try await self.daraja.stkPush(
                phone: phone.value, shillings: Int(deposit.amount.cents / 100), accountReference: MPesaBook.stkAccountReference, description: "Deposit"
            )
            try await self.book.recordCheckout(depositID: deposit.id, checkoutRequestID: accepted.checkoutRequestID)
            self.counter("mpesa_stk_push_total", "accepted")
            self.logger.info("STK push accepted", metadata: ["deposit": .stringConvertible(deposit.id)])
        } catch let error as DarajaError where !error.outcomeUnknown {
            // Refused outright: the customer saw no prompt. Fail it and say so by SMS.
            self.counter("mpesa_stk_push_total", "refused")
            _ = try? await self.book.failDeposit(.id(deposit.id), code: DepositFailure.notSentCode, text: error.description)
            // After the write, so the line says what the database says.
            self.logger.warning("STK push refused", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(error.description)])
        } catch {
            // No answer: the push may have gone. A payment that arrives within the matching window
            // is matched to it by phone and amount (`adoptUnconfirmedDeposit`) and credited once an
            // STK Query confirms it; after the window the reconciler fails the deposit.
            self.counter("mpesa_stk_push_total", "unknown")
            self.logger.warning("STK push unanswered", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
        }
    }

    // MARK: Withdraw

    public func withdraw(_ msisdn: MSISDN, amount: Amount, fee: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome {
        guard amount.cents % 100 == 0, (10...250_000).contains(amount.cents / 100) else { return .outsideLimits }
        let payout = try await self.book.reserveWithdrawal(msisdn, amount: amount, fee: fee, key: key)
        if payout.status == .reserved, self.inFlight.claim("payout:" + payout.id) {
            self.later {
                await self.pay(payout)
                self.inFlight.release("payout:" + payout.id)
            }
        }
        return .paying(available: try await self.wallet.balances(msisdn).available)
    }

    /// Sends the B2C request for a reserved payout, always under the payout's own id.
    func pay(_ payout: Payout) async {
        do {
            guard let phone = payout.msisdn else { throw WalletError.notRegistered }
            let acknowledged = try await self.daraja.b2c(
                originatorConversationID: payout.id, phone: phone.value, shillings: Int(payout.amount.cents / 100), remarks: "Wallet withdrawal"
            )
            if acknowledged.originatorConversationID != payout.id {
                self.logger.warning("B2C acknowledgement names another OriginatorConversationID; results must name it", metadata: ["payout": .string(payout.id)])
            }
            try await self.book.markWithdrawalSent(
                payout.id, conversationID: acknowledged.conversationID, originatorConversationID: acknowledged.originatorConversationID
            )
            self.counter("mpesa_b2c_total", "accepted")
        } catch let error as DarajaError where error.isDuplicateOriginator {
            // The first request was taken: its result is on its way, or a status query finds it.
            self.counter("mpesa_b2c_total", "duplicate")
            _ = try? await self.book.markWithdrawalSent(payout.id, conversationID: nil)
        } catch let error as DarajaError where !error.mayHaveBeenTaken && !error.isBusy {
            // Refused outright. The hold is released only if no attempt of this payout ever went
            // unanswered: an earlier attempt may have paid, and a refusal of this one proves nothing.
            self.counter("mpesa_b2c_total", "refused")
            self.logger.warning("B2C refused", metadata: ["payout": .string(payout.id), "error": .string(error.description)])
            do {
                if try await self.book.refuseWithdrawal(payout.id, code: -1, text: error.description) == .keptForStatus {
                    self.logger.warning("B2C re-send refused after an unanswered attempt; the hold stays until a status answer", metadata: ["payout": .string(payout.id)])
                }
            } catch {
                self.logger.warning("B2C refusal not recorded", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
            }
        } catch {
            // Busy or no answer: the hold stays; the reconciler retries with the same id. An attempt
            // that may have been taken is remembered: a later refusal no longer refunds.
            self.counter("mpesa_b2c_total", "unknown")
            if (error as? DarajaError)?.mayHaveBeenTaken ?? true {
                do {
                    try await self.book.markPayoutOutcomeUnknown(payout.id)
                } catch {
                    self.logger.warning("unknown B2C outcome not recorded", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
                }
            }
            // Logged once the unknown outcome is recorded: what the line says is then what the
            // database says (a test waiting for this line raced the write before).
            self.logger.warning("B2C unanswered", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
        }
    }

    func counter(_ label: String, _ outcome: String) {
        self.metrics.count(label, [("outcome", outcome)])
    }
}
