import Basics
import Foundation
import GatewayTelemetry
import Logging
import Menus
import Wallet

/// The wallet and the mobile-money provider behind the menus' actions: runs the binding of
/// ``ActionTable`` that a request names, and turns the wallet's refusals into the menus' error codes.
public struct WalletActions: ActionRunner {
    let wallet: Wallet
    let mobileMoney: any MobileMoneyChannel
    /// The fees sends pay (menus.json's `tariffs`).
    let tariff: Tariff
    /// The menus' `http` actions (``HTTPActions``), when the file has any.
    let httpActions: HTTPActions?
    /// Whose numbers a recipient may be.
    let plan: NumberingPlan
    /// `wallet_journeys_total{kind,outcome}`: each money journey's end (``journeys``).
    let metrics: MetricCache
    let logger = Logger(label: "wallet.actions")

    public init(
        wallet: Wallet, mobileMoney: any MobileMoneyChannel = UnavailableMobileMoney(), tariff: Tariff = Tariff([:]), httpActions: HTTPActions? = nil,
        plan: NumberingPlan = .kenya, metrics: MetricCache = .discarding
    ) {
        self.plan = plan
        self.metrics = metrics
        self.wallet = wallet
        self.mobileMoney = mobileMoney
        self.tariff = tariff
        self.httpActions = httpActions
    }

    public func isLookup(_ action: String) -> Bool {
        if HTTPActions.handles(action) { return self.httpActions?.isLookup(action) ?? false }
        return ActionTable.byName[action]?.isLookup ?? false
    }

    public func run(_ request: ActionRequest, context: ActionContext) async throws -> ActionResult {
        if HTTPActions.handles(request.action) {
            guard let http = self.httpActions else { throw ActionError.unknownAction(request.action) }
            return try await http.run(request, context: context)
        }
        guard let binding = ActionTable.byName[request.action] else { throw ActionError.unknownAction(request.action) }
        guard let journey = Self.journeys[request.action] else { return try await self.perform(binding, request, context) }
        do {
            let result = try await self.perform(binding, request, context)
            self.journeyEnded(journey, result)
            return result
        } catch {
            self.metrics.count("wallet_journeys_total", [("kind", journey), ("outcome", "failed")])
            throw error
        }
    }

    /// The actions that move money, by the journey they end: the money-journey objective counts
    /// their outcomes (docs/SLO.md).
    static let journeys = [
        "wallet.send": "send", "wallet.save": "save", "wallet.unsave": "unsave", "mpesa.deposit": "deposit", "mpesa.withdraw": "withdraw",
    ]

    /// The error codes that are the gateway's or the provider's failing, not the customer's doing
    /// (a wrong PIN, too little money, a limit).
    static let failingCodes: Set<String> = ["unavailable", "idempotency_key_reused"]

    private func journeyEnded(_ journey: String, _ result: ActionResult) {
        let outcome: String
        switch result {
        case .success: outcome = "completed"
        case .failure(let code, _): outcome = Self.failingCodes.contains(code) ? "failed" : "refused"
        }
        self.metrics.count("wallet_journeys_total", [("kind", journey), ("outcome", outcome)])
    }

    private func perform(_ binding: ActionBinding, _ request: ActionRequest, _ context: ActionContext) async throws -> ActionResult {
        do {
            return try await binding.perform(self, request, context)
        } catch let error as WalletError {
            if case .locked(let until) = error { await self.lockNotice(context.msisdn, until: until) }
            switch error {
            case .wrongPIN(let left): return .failure(error.code, ["attempts_left": String(left)])
            case .coolingOff(let until):
                let when = Self.localTime(until)
                await self.notice(
                    context.msisdn, "cooling_off", ["until": when, "limit": String(self.wallet.coolingOffLimit.cents)],
                    dedupe: "cooling_off:\(context.msisdn.value):\(Int(until.timeIntervalSince1970))")
                return .failure(error.code, ["until": when])
            case .invalidArgument: throw error
            default: return .failure(error.code)
            }
        }
    }

    /// Tells the customer of a PIN lock, once per lock (the same lock gives the same key).
    func lockNotice(_ msisdn: MSISDN, until: Date) async {
        // Bounded before it meets arithmetic: a lock "until an operator unlocks" is a century.
        let minutes = Int(min(max(until.timeIntervalSinceNow / 60, 1), 100_000).rounded(.up))
        var params = ["minutes": String(minutes)]
        if minutes > 24 * 60 { params["reason"] = "permanent" }
        await self.notice(msisdn, "account_locked", params, dedupe: "locked:\(msisdn.value):\(Int(until.timeIntervalSince1970))")
    }

    /// Checks the request's `pin` argument for the customer.
    @discardableResult
    func verifyPIN(_ request: ActionRequest, _ context: ActionContext) async throws -> Wallet.Customer {
        try await self.wallet.verifyPIN(context.msisdn, pin: request.arguments["pin"] ?? "")
    }

    /// Checks the PIN of a customer who must not be blocked (anything but checking the balance).
    @discardableResult
    func verifyActivePIN(_ request: ActionRequest, _ context: ActionContext) async throws -> Wallet.Customer {
        let customer = try await self.verifyPIN(request, context)
        if customer.isBlocked { throw WalletError.blocked }
        return customer
    }

    /// A moment as the customer reads it: `07 Dec 14:30`, Nairobi time (12 characters).
    static func localTime(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi") ?? TimeZone(secondsFromGMT: 3 * 3600)!
        let parts = calendar.dateComponents([.day, .month, .hour, .minute], from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        return "\(two(parts.day)) \(months[max(0, min(11, (parts.month ?? 1) - 1))]) \(two(parts.hour)):\(two(parts.minute))"
    }

    /// Checks the PIN, then moves the request's amount between the customer's main and savings
    /// accounts with `move`; the amount and the receipt.
    func moveSavings(
        _ request: ActionRequest, _ context: ActionContext, _ move: (Wallet, MSISDN, Amount, IdempotencyKey) async throws -> TransferReceipt
    ) async throws -> (Amount, TransferReceipt) {
        try await self.verifyPIN(request, context)
        let amount = try Self.amount(request)
        return (amount, try await move(self.wallet, context.msisdn, amount, try Self.key(context)))
    }

    /// Queues an SMS notice; a failure to queue is logged, never the user's problem.
    func notice(_ msisdn: MSISDN, _ template: String, _ params: [String: String], dedupe: String) async {
        do {
            try await self.wallet.queueNotice(msisdn, template: template, params: params, dedupe: dedupe)
        } catch {
            self.logger.warning("SMS notice not queued", metadata: ["template": .string(template), "error": .string(safeDescription(of: error))])
        }
    }

    static func key(_ context: ActionContext) throws -> IdempotencyKey {
        guard let key = IdempotencyKey(context.idempotencyKey) else { throw ActionError.badKey }
        return key
    }

    static func amount(_ request: ActionRequest) throws -> Amount {
        guard let text = request.arguments["amount"], let cents = Int64(text), cents > 0 else { throw ActionError.badAmount }
        return Amount(cents: cents)
    }
}
