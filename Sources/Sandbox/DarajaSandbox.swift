import Basics
import Curl
import Foundation
import Hummingbird
import Logging
import MPesa
import Synchronization

/// A simulated Daraja inside the gateway process, for development without Safaricom credentials.
///
/// It takes the real ``DarajaClient``'s requests over HTTP under ``pathPrefix`` (OAuth, STK push,
/// STK query, B2C, transaction status), checks each against Daraja's rules (``DarajaRequestRules``)
/// and answers in Daraja's shapes. Then, after ``delay``, it plays the customer and Safaricom as
/// ``SandboxRules`` say for the amount, and posts the callbacks over HTTP to the URLs the request
/// named, so the gateway's real callback routes and reconciler run as they do live. A customer
/// who pays also gets M-Pesa's confirmation SMS in the ``SandboxInbox``.
public final class DarajaSandbox: Sendable {
    /// Where the routes live on the gateway's listener; the client's `MPESA_BASE_URL` ends with it.
    public static let pathPrefix = "/sandbox/daraja"
    /// The simulated app's credentials. Not secrets: they open nothing but this simulation.
    public static let consumerKey = "sandbox-consumer-key"
    public static let consumerSecret = "sandbox-consumer-secret"
    /// Safaricom's public sandbox paybill and passkey (docs/reference/daraja.md).
    public static let shortcode = "174379"
    public static let passkey = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
    public static let b2cShortcode = "600000"
    public static let initiatorName = "sandboxapi"
    public static let securityCredential = Data("sandbox-initiator-credential".utf8).base64EncodedString()

    struct Push {
        let merchantRequestID: String
        let phone: String
        let shillings: Int
        let outcome: SandboxRules.STKOutcome
        let settlesAt: ContinuousClock.Instant
        let receipt: String
    }

    struct Payment {
        let phone: String
        let shillings: Int
        let outcome: SandboxRules.B2COutcome
        let settlesAt: ContinuousClock.Instant
        let receipt: String
    }

    /// A payment a simulated customer made to the paybill, by its receipt (TransID).
    struct PaybillPayment {
        let account: String
        let shillings: Int
        /// The payer, when the account is a phone number.
        let phone: String?
        let at: Date
    }

    struct State {
        var token: String?
        var pushes: [String: Push] = [:]
        var pushOrder: [String] = []
        var payments: [String: Payment] = [:]
        var paymentOrder: [String] = []
        var paybills: [String: PaybillPayment] = [:]
        var paybillOrder: [String] = []
        /// The paybill's confirmation and validation URLs: registered, or the gateway's own.
        var c2bURLs: (confirmation: String, validation: String)?
        var sequence = 0
        /// The simulated shortcodes' accounts, in cents: payouts draw on the B2C utility account
        /// (the float), paid pushes and paybill payments land in the working account.
        var utilityCents: Int64 = DarajaSandbox.startingFloat
        var workingCents: Int64 = 0
    }

    /// How long the simulated customer takes to answer a prompt, and Safaricom to pay out.
    public let delay: Duration
    let rules = DarajaRequestRules(shortcode: DarajaSandbox.shortcode, passkey: DarajaSandbox.passkey, b2cShortcode: DarajaSandbox.b2cShortcode)
    let inbox: SandboxInbox
    let scheduler: SandboxScheduler
    let http: CurlClient
    let logger: Logger
    /// Whose numbers the simulated customers have.
    let plan: NumberingPlan
    let state = Mutex(State())
    /// Pushes and payments remembered for queries; the oldest are forgotten past this.
    static let remembered = 10_000

    /// Where a simulated payer's paybill payment is reported (`paybillURLs`: the gateway's own
    /// `/paybill/confirm` and `/paybill/validate`, token included), until the gateway registers others.
    init(
        delay: Duration, inbox: SandboxInbox, scheduler: SandboxScheduler, http: CurlClient, paybillURLs: (confirmation: String, validation: String)? = nil,
        plan: NumberingPlan = .kenya, logger: Logger
    ) {
        self.plan = plan
        self.delay = delay
        self.inbox = inbox
        self.scheduler = scheduler
        self.http = http
        self.logger = logger
        self.state.withLock { $0.c2bURLs = paybillURLs }
    }

    /// Where the simulator's "Pay bill" and `ussd-gateway sandbox paybill` ask a simulated customer
    /// to pay the paybill: `POST` `{"account": "0712000001", "amount": 500}`.
    public static let paybillPath = pathPrefix + "/paybill"

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get(RouterPath(Self.pathPrefix + "/oauth/v1/generate")) { request, _ -> Response in self.oauth(request) }
        for path in [
            DarajaRequestRules.stkPush, DarajaRequestRules.stkQuery, DarajaRequestRules.b2c, DarajaRequestRules.transactionStatus, DarajaRequestRules.registerC2B,
            DarajaRequestRules.accountBalance,
        ] {
            router.post(RouterPath(Self.pathPrefix + path)) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 64 * 1024)
                return self.post(path, request, Array(body.readableBytesView))
            }
        }
        router.post(RouterPath(Self.paybillPath)) { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 * 1024)
            return await self.payBill(Array(body.readableBytesView))
        }
    }

    // MARK: Requests

    func oauth(_ request: Request) -> Response {
        let expected = "Basic " + Data("\(Self.consumerKey):\(Self.consumerSecret)".utf8).base64EncodedString()
        guard request.uri.query == "grant_type=client_credentials" else { return Self.error(400, "400.008.02", "Invalid grant type passed") }
        guard request.headers[.authorization] == expected else { return Self.error(400, "400.008.01", "Invalid Authentication passed") }
        // Each new token replaces the previous one, as Daraja's do.
        let token = Self.randomToken(28)
        self.state.withLock { $0.token = token }
        return Self.json(200, #"{"access_token":"\#(token)","expires_in":"3599"}"#)
    }

    func post(_ path: String, _ request: Request, _ body: [UInt8]) -> Response {
        guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
            return Self.error(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
        }
        let token = self.state.withLock { $0.token }
        guard let token, request.headers[.authorization] == "Bearer " + token else { return Self.error(401, "404.001.03", "Invalid Access Token") }
        guard case .object(let json)? = JSONValue.parse(body) else { return Self.error(400, "400.002.05", "Invalid Request Payload") }
        let problems = self.rules.problems(path, json)
        if let first = problems.first {
            self.logger.warning("sandbox Daraja refused a request", metadata: ["path": .string(path), "problems": .string(problems.joined(separator: "; "))])
            return Self.error(400, "400.002.02", "Bad Request - " + first)
        }
        switch path {
        case DarajaRequestRules.stkPush: return self.stkPush(json)
        case DarajaRequestRules.stkQuery: return self.stkQuery(json)
        case DarajaRequestRules.b2c: return self.b2c(json)
        case DarajaRequestRules.accountBalance: return self.accountBalance(json)
        case DarajaRequestRules.registerC2B:
            self.state.withLock { $0.c2bURLs = (json["ConfirmationURL"]?.string ?? "", json["ValidationURL"]?.string ?? "") }
            return Self.json(200, #"{"OriginatorCoversationID":"sandbox-\#(Self.randomToken(8))","ResponseCode":"0","ResponseDescription":"Success"}"#)
        default: return self.transactionStatus(json)
        }
    }

    func stkPush(_ json: [String: JSONValue]) -> Response {
        let shillings = Int(json["Amount"]?.integer ?? 0)
        let phone = json["PhoneNumber"]?.string ?? ""
        let callbackURL = json["CallBackURL"]?.string ?? ""
        let outcome = SandboxRules.stk(shillings: shillings)
        let (checkout, push) = self.state.withLock { state -> (String, Push) in
            state.sequence += 1
            let checkout = "ws_CO_\(Self.nairobiStamp(Date()))\(state.sequence)\(Self.randomToken(4))"
            let push = Push(
                merchantRequestID: "29115-\(state.sequence)-1", phone: phone, shillings: shillings, outcome: outcome,
                settlesAt: .now + self.delay, receipt: Self.receipt()
            )
            Self.remember(checkout, push, in: &state.pushes, order: &state.pushOrder)
            return (checkout, push)
        }
        self.logger.info("sandbox STK push", metadata: ["checkout": .string(checkout), "outcome": .string(outcome.rawValue)])
        self.scheduler.after(self.delay) { await self.settle(checkout, push, callbackURL: callbackURL) }
        return Self.json(
            200,
            #"{"MerchantRequestID":\#(quoted(push.merchantRequestID)),"CheckoutRequestID":\#(quoted(checkout)),"ResponseCode":"0","ResponseDescription":"Success. Request accepted for processing","CustomerMessage":"Success. Request accepted for processing"}"#
        )
    }

    func stkQuery(_ json: [String: JSONValue]) -> Response {
        let checkout = json["CheckoutRequestID"]?.string ?? ""
        guard let push = self.state.withLock({ $0.pushes[checkout] }) else { return Self.error(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID") }
        guard ContinuousClock.now >= push.settlesAt else { return Self.error(500, "500.001.1001", "The transaction is being processed") }
        let (code, description) = push.outcome.result
        return Self.json(
            200,
            #"{"ResponseCode":"0","ResponseDescription":"The service request has been accepted successsfully","MerchantRequestID":\#(quoted(push.merchantRequestID)),"CheckoutRequestID":\#(quoted(checkout)),"ResultCode":"\#(code)","ResultDesc":\#(quoted(description))}"#
        )
    }

    func b2c(_ json: [String: JSONValue]) -> Response {
        let originator = json["OriginatorConversationID"]?.string ?? ""
        let shillings = Int(json["Amount"]?.string ?? "") ?? 0
        let phone = json["PartyB"]?.string ?? ""
        let resultURL = json["ResultURL"]?.string ?? ""
        let timeoutURL = json["QueueTimeOutURL"]?.string ?? ""
        let outcome = SandboxRules.b2c(shillings: shillings)
        let payment = Payment(phone: phone, shillings: shillings, outcome: outcome, settlesAt: .now + self.delay, receipt: Self.receipt())
        let taken = self.state.withLock { state -> Bool in
            // The OriginatorConversationID is the idempotency key: Daraja refuses it a second time.
            guard state.payments[originator] == nil else { return false }
            Self.remember(originator, payment, in: &state.payments, order: &state.paymentOrder)
            return true
        }
        guard taken else { return Self.error(400, "400.002.02", "Duplicate OriginatorConversationID") }
        let conversation = "AG_\(Self.nairobiStamp(Date()).prefix(8))_\(Self.randomToken(12))"
        self.logger.info("sandbox B2C payment", metadata: ["originator": .string(originator), "outcome": .string(outcome.rawValue)])
        self.scheduler.after(self.delay) {
            await self.settle(originator, conversation: conversation, payment, resultURL: resultURL, timeoutURL: timeoutURL)
        }
        return Self.json(
            200,
            #"{"ConversationID":\#(quoted(conversation)),"OriginatorConversationID":\#(quoted(originator)),"ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#
        )
    }

    func transactionStatus(_ json: [String: JSONValue]) -> Response {
        let queryID = json["OriginatorConversationID"]?.string ?? ""
        let original = json["OriginalConversationID"]?.string ?? ""
        let resultURL = json["ResultURL"]?.string ?? ""
        let conversation = "AG_\(Self.nairobiStamp(Date()).prefix(8))_\(Self.randomToken(12))"
        if let receipt = json["TransactionID"]?.string {
            self.scheduler.after(.milliseconds(200)) {
                await self.callback(resultURL, self.paybillStatus(receipt, queryID: queryID, conversation: conversation), what: "transaction status result")
            }
            return Self.json(
                200,
                #"{"OriginatorConversationID":\#(quoted(queryID)),"ConversationID":\#(quoted(conversation)),"ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#
            )
        }
        self.scheduler.after(.milliseconds(200)) {
            let payment = self.state.withLock { $0.payments[original] }
            let body: String
            if let payment, ContinuousClock.now >= payment.settlesAt {
                let status = payment.outcome.paid ? "Completed" : "Failed"
                body = Self.result(
                    queryID, conversation: conversation, code: 0, description: "The service request has been accepted successfully.",
                    transactionID: payment.receipt,
                    parameters: [
                        ("ReceiptNo", quoted(payment.receipt)), ("TransactionStatus", quoted(status)), ("Amount", String(payment.shillings)),
                        ("DebitPartyName", quoted(Self.b2cShortcode + " - Wallet")), ("CreditPartyName", quoted(payment.phone)),
                    ]
                )
            } else if payment != nil {
                body = Self.result(
                    queryID, conversation: conversation, code: 0, description: "The service request has been accepted successfully.",
                    transactionID: "", parameters: [("TransactionStatus", quoted("Pending"))]
                )
            } else {
                body = Self.result(queryID, conversation: conversation, code: 1, description: "No transaction with this OriginalConversationID", transactionID: "", parameters: [])
            }
            await self.callback(resultURL, body, what: "transaction status result")
        }
        return Self.json(
            200,
            #"{"OriginatorConversationID":\#(quoted(queryID)),"ConversationID":\#(quoted(conversation)),"ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#
        )
    }

    /// Safaricom's answer about a paybill payment by its receipt: Completed with the amount and both
    /// parties for one a simulated customer made, a non-zero result for any other.
    func paybillStatus(_ receipt: String, queryID: String, conversation: String) -> String {
        guard let payment = self.state.withLock({ $0.paybills[receipt] }) else {
            return Self.result(
                queryID, conversation: conversation, code: "\"R000001\"", description: "The transaction receipt number does not exist.", transactionID: "", parameters: []
            )
        }
        return Self.result(
            queryID, conversation: conversation, code: "0", description: "The service request is processed successfully.", transactionID: receipt,
            parameters: [
                ("DebitPartyName", quoted((payment.phone ?? "254700000000") + " - SANDBOX CUSTOMER")),
                ("CreditPartyName", quoted(Self.shortcode + " - WALLET SANDBOX")), ("OriginatorConversationID", quoted(queryID)),
                ("InitiatedTime", quoted(Self.nairobiStamp(payment.at))), ("DebitAccountType", quoted("MMF Account For Customer")),
                ("TransactionReason", "null"), ("ReasonType", quoted("Pay Bill Online")), ("TransactionStatus", quoted("Completed")),
                ("FinalisedTime", quoted(Self.nairobiStamp(payment.at))), ("Amount", String(payment.shillings)), ("ReceiptNo", quoted(receipt)),
            ]
        )
    }

    // MARK: A customer pays the paybill

    /// `POST /sandbox/daraja/paybill` `{"account": "0712000001", "amount": 500}`: a simulated
    /// customer pays the paybill `amount` whole shillings with `account` as the account number. As
    /// Safaricom does, the sandbox asks the validation URL first, and unless it refuses, posts the
    /// confirmation (the payer's number masked); the payment is then known to Transaction Status,
    /// which is what credits it. The answer says what happened, as JSON.
    func payBill(_ request: [UInt8]) async -> Response {
        guard case .object(let json)? = JSONValue.parse(request), let account = json["account"]?.string?.trimmingCharacters(in: .whitespaces),
            (1...20).contains(account.count), !account.contains(where: { $0.isNewline })
        else { return Self.error(400, "400.002.05", "Send {\"account\": \"0712000001\", \"amount\": 500}") }
        var shillings = 0
        switch json["amount"] {
        case .integer(let number)?: shillings = Int(clamping: number)
        case .string(let text)?: shillings = Int(text) ?? 0
        default: break
        }
        guard (1...250_000).contains(shillings) else { return Self.error(400, "400.002.05", "amount must be whole shillings from 1 to 250000") }
        guard let urls = self.state.withLock({ $0.c2bURLs }) else { return Self.error(409, "409.000.01", "No paybill URLs: run ussd-gateway mpesa register-c2b") }
        let receipt = Self.receipt()
        let phone = MSISDN(parsing: account.filter { !" -".contains($0) }, plan: self.plan)?.value
        let payment = PaybillPayment(account: account, shillings: shillings, phone: phone, at: Date())
        self.state.withLock { Self.remember(receipt, payment, in: &$0.paybills, order: &$0.paybillOrder) }
        func report(balance: String) -> [UInt8] {
            let members: [String: JSONValue] = [
                "TransactionType": .string("Pay Bill"), "TransID": .string(receipt), "TransTime": .string(Self.nairobiStamp(payment.at)),
                "TransAmount": .string("\(shillings).00"), "BusinessShortCode": .string(Self.shortcode), "BillRefNumber": .string(account),
                "InvoiceNumber": .string(""), "OrgAccountBalance": .string(balance), "ThirdPartyTransID": .string(""),
                "MSISDN": .string("2547 ***** 126"), "FirstName": .string("Sandbox"), "MiddleName": .string(""), "LastName": .string("Customer"),
            ]
            return Array(JSONValue.object(members).serialized.utf8)
        }
        var validation: String?
        do {
            let reply = try await self.http.execute(
                CurlRequest(method: "POST", url: urls.validation, headers: [("Content-Type", "application/json")], body: report(balance: ""), timeout: .seconds(8))
            )
            validation = JSONValue.parse(reply.body)?["ResultCode"]?.string
        } catch {
            self.logger.warning("sandbox paybill validation not answered", metadata: ["error": .string(String(describing: error))])
        }
        if let validation, validation != "0" {
            self.state.withLock { $0.paybills[receipt] = nil }
            self.logger.info("sandbox paybill payment refused at validation", metadata: ["trans_id": .string(receipt), "code": .string(validation)])
            return Self.json(200, JSONValue.object([
                "TransID": .string(receipt), "validation": .string(validation), "confirmed": .bool(false),
                "message": .string("The gateway refused the payment at validation (\(validation)): nothing was paid."),
            ]).serialized)
        }
        if let phone {
            self.inbox.deliver(
                to: "+" + phone, from: "MPESA",
                text: "\(receipt) Confirmed. Ksh\(shillings).00 sent to WALLET \(Self.shortcode) for account \(account) on \(Self.handsetDate(payment.at)). (sandbox)"
            )
        }
        let confirmed: Bool
        do {
            let reply = try await self.http.execute(
                CurlRequest(method: "POST", url: urls.confirmation, headers: [("Content-Type", "application/json")], body: report(balance: "1000000.00"), timeout: .seconds(15))
            )
            confirmed = reply.status == 200
        } catch {
            self.logger.warning("sandbox paybill confirmation not delivered", metadata: ["error": .string(String(describing: error))])
            confirmed = false
        }
        self.logger.info("sandbox paybill payment", metadata: ["trans_id": .string(receipt), "confirmed": .stringConvertible(confirmed)])
        return Self.json(200, JSONValue.object([
            "TransID": .string(receipt), "validation": validation.map(JSONValue.string) ?? .null, "confirmed": .bool(confirmed),
            "message": .string(
                confirmed
                    ? "Paid KES \(shillings) to paybill \(Self.shortcode) for account \(account), receipt \(receipt). The gateway credits it once Transaction Status confirms it."
                    : "Paid KES \(shillings), receipt \(receipt), but the gateway did not take the confirmation."
            ),
        ]).serialized)
    }
}

/// `text` as a JSON string literal.
func quoted(_ text: String) -> String {
    JSONValue.string(text).serialized
}
