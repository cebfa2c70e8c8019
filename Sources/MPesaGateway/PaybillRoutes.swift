import Basics
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Logging
import MPesa
import MPesaBook
import NIOCore
import Wallet

/// Paybill deposits (M-Pesa C2B): `POST /paybill/validate` and `POST /paybill/confirm`, with the
/// M-Pesa callback token as one more segment when set (the URLs `ussd-gateway mpesa register-c2b`
/// registers; Safaricom refuses "mpesa" in them).
///
/// - Validation answers within Safaricom's 8-second budget: `0` (accepted) when the account
///   (`BillRefNumber`, any usual form of a number) is a registered customer's and the amount is
///   within the limits (`MPESA_C2B_MAX_AMOUNT` and the customer's tier), else `C2B00012` (account)
///   or `C2B00013` (amount), `C2B00015` for another shortcode, and `C2B00016` when the answer could
///   not be worked out in time.
/// - Confirmation credits nothing by itself: anyone holding the callback token could send one. It
///   is recorded once per TransID and checked with Daraja's Transaction Status (asked after the
///   answer); only Safaricom's answer moves money (``MPesaService/statusAnswer(_:query:)``). A
///   confirmation for another shortcode is kept for review. It answers
///   `{"ResultCode": 0, "ResultDesc": "Success"}`.
/// - A malformed body is a 400 with its reason logged; no body, name or number is logged.
public struct PaybillRoutes: Sendable {
    let book: MPesaBook
    /// Nil while no paybill is configured: the routes then answer 503.
    let shortcode: String?
    /// Asks Safaricom about each confirmation; nil while M-Pesa is not configured (a confirmation
    /// is then recorded and goes to review unverified).
    let verifier: MPesaService?
    /// `MPESA_C2B_MAX_AMOUNT`: validation refuses more.
    let maxAmount: Amount
    let guardian: CallbackGuard
    let logger: Logger
    /// Well inside Safaricom's 8 seconds, network both ways included.
    let validationBudget: Duration
    /// Whose numbers an account may name.
    let plan: NumberingPlan
    let metrics: MetricCache

    public init(
        book: MPesaBook, shortcode: String?, verifier: MPesaService?, maxAmount: Amount = .shillings(150_000), guardian: CallbackGuard, logger: Logger,
        validationBudget: Duration = .seconds(5), plan: NumberingPlan = .kenya, metrics: MetricCache
    ) {
        self.metrics = metrics
        self.plan = plan
        self.book = book
        self.shortcode = shortcode
        self.verifier = verifier
        self.maxAmount = maxAmount
        self.guardian = guardian
        self.logger = logger
        self.validationBudget = validationBudget
    }

    public func register(on router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/paybill/validate")) { request, context in try await self.validate(request, context) }
        router.post(self.guardian.paths("/paybill/confirm")) { request, context in try await self.confirm(request, context) }
    }

    func payment(_ request: Request, _ context: GatewayRequestContext, kind: String) async throws -> (C2BPayment, [UInt8], String) {
        try self.guardian.check(request, context)
        guard let shortcode = self.shortcode else {
            self.logger.warning("paybill callback while no paybill is configured", metadata: ["kind": .string(kind)])
            throw HTTPError(.serviceUnavailable)
        }
        let body = try await CallbackBody.bytes(request, logger: self.logger, route: "paybill." + kind)
        do {
            return (try C2BPayment(body: body), body, shortcode)
        } catch {
            self.metrics.count("mpesa_paybill_total", [("kind", kind), ("outcome", "malformed")])
            throw self.guardian.refuse(error.description, request, context, route: "paybill." + kind)
        }
    }

    func validate(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (payment, _, shortcode) = try await self.payment(request, context, kind: "validate")
        let result: C2BValidationResult
        if payment.shortcode != shortcode {
            result = .invalidShortcode
        } else {
            let (book, account, amount, maximum) = (self.book, MSISDN(parsing: Self.account(payment.billRef), plan: self.plan), Amount(cents: payment.cents), self.maxAmount)
            do {
                let check = try await withDeadline(self.validationBudget) {
                    try await book.validatePaybill(transID: payment.transID, billRef: payment.billRef, msisdn: account, amount: amount, maximum: maximum)
                }
                switch check {
                case .accept: result = .accepted
                case .unknownAccount: result = .invalidAccount
                case .amountRefused: result = .invalidAmount
                }
            } catch {
                self.logger.error(
                    "paybill validation failed", metadata: ["trans_id": .string(payment.transID), "error": .string(safeDescription(of: error))])
                result = .otherError
            }
        }
        self.metrics.count("mpesa_paybill_total", [("kind", "validate"), ("outcome", result == .accepted ? "accepted" : result.rawValue)])
        self.logger.info("paybill validation", metadata: ["trans_id": .string(payment.transID), "result": .string(result.rawValue)])
        return Self.json(result.body(thirdPartyTransID: payment.thirdPartyTransID))
    }

    func confirm(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (payment, body, shortcode) = try await self.payment(request, context, kind: "confirm")
        // What is kept is the parsed body written out again, never the bytes as sent.
        let raw = JSONValue.parse(body)?.serialized ?? "{}"
        let metadata: Logger.Metadata = ["trans_id": .string(payment.transID)]
        guard payment.shortcode == shortcode else {
            // Not our paybill's money: nothing is recorded or credited; a person looks at it, once.
            try await self.book.keepForReviewOnce(
                kind: "c2b", reference: payment.transID, reason: ReviewItem.conflict, body: raw,
                earlierResult: "this gateway's paybill is \(shortcode)",
                newResult: "paybill confirmation for shortcode \(payment.shortcode): nothing credited"
            )
            self.metrics.count("mpesa_paybill_total", [("kind", "confirm"), ("outcome", "other_shortcode")])
            self.logger.error("paybill confirmation for another shortcode; kept for review", metadata: metadata)
            return Self.json(#"{"ResultCode":0,"ResultDesc":"Success"}"#)
        }
        let recorded = try await self.book.recordPaybillConfirmation(
            transID: payment.transID, billRef: payment.billRef, shortcode: payment.shortcode, msisdn: MSISDN(parsing: Self.account(payment.billRef), plan: self.plan),
            amount: Amount(cents: payment.cents), raw: raw
        )
        let outcome: String
        switch recorded {
        case .recorded:
            outcome = "recorded"
            if let verifier = self.verifier {
                // Asked after the answer: Safaricom is owed a quick one, and only its status answer credits.
                verifier.verifyPaybillLater(payment.transID)
            } else {
                try await self.book.holdUnverifiablePaybill(transID: payment.transID)
                self.logger.error("paybill confirmation while M-Pesa is not configured: it cannot be verified; kept for review", metadata: metadata)
            }
        case .repeated:
            outcome = "repeated"
        }
        self.metrics.count("mpesa_paybill_total", [("kind", "confirm"), ("outcome", outcome)])
        self.logger.info("paybill confirmation", metadata: metadata.merging(["outcome": .string(outcome)]) { $1 })
        return Self.json(#"{"ResultCode":0,"ResultDesc":"Success"}"#)
    }

    /// The account as payers type it: `0712 345 678`, `0712-345-678`, `254712345678`, `+254...`.
    static func account(_ billRef: String) -> String {
        String(billRef.filter { !" -.".contains($0) })
    }

    static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Runs `body`, or throws ``DeadlinePassed`` once `limit` has passed first (the body is cancelled).
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw DeadlinePassed()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

struct DeadlinePassed: Error, LogSafeError {
    var description: String { "no answer within the deadline" }
}
