import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
import MPesa
@testable import MPesaGateway
import Sandbox
@testable import SMSChannel
import Synchronization
import Testing
import TestSupport
@testable import USSDChannel

/// A local Daraja that checks every request strictly against docs/reference/daraja.md and
/// answers as the scenario says. Anything off (a missing or extra key, a wrong Password or
/// Timestamp, a stale token, a field format) is recorded in `violations` and refused the way
/// Daraja refuses (400 with its error shape); tests expect `violations` to stay empty.
final class FakeDaraja: Sendable {
    /// The payer's names Safaricom sends (paybill confirmations, Transaction Status and B2C results):
    /// distinctive, so a test can grep a database dump for them.
    static let payerFirstName = "Nyokabi"
    static let payerLastName = "Wairimu-Kamau"
    static var payerName: String { payerFirstName + " " + payerLastName }

    static let key = "fake-consumer-key"
    static let secret = "fake-consumer-secret"
    static let shortcode = "174379"
    static let passkey = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
    static let b2cShortcode = "600992"
    /// The paybill's own initiator (`MPESA_C2B_INITIATOR_NAME`): the only one the fake lets ask
    /// Transaction Status about paybill receipts.
    static let c2bInitiator = "paybillapi"
    static let c2bCredential = "cGF5YmlsbC1jcmVkZW50aWFs"

    enum Answer: Sendable {
        case accept
        /// Daraja's error shape with this status.
        case error(status: Int, code: String, message: String)
        /// No answer before the client gives up.
        case hang
    }

    enum QueryAnswer: Sendable {
        case pending
        case paid
        case failed(Int, String)
    }

    struct Request: Sendable {
        let path: String
        let json: [String: JSONValue]
        /// The W3C trace context the call carried, if any.
        var traceparent: String? = nil
    }

    /// A payment M-Pesa knows, as Transaction Status reports it.
    struct KnownPayment: Sendable {
        var shillings: Int
        /// The paybill paid (C2B), or the paying B2C shortcode.
        var shortcode: String
        var phone: String
        /// `Completed`, `Failed`, `Cancelled`, `Expired`, `Declined`, `Pending` ...
        var status: String
        var receipt: String
        /// B2C: the ConversationID the acknowledgement gave.
        var conversationID: String?
    }

    /// A Transaction Status query the fake accepted, and Safaricom's answer to it, posted to the
    /// gateway's result route when the test says (``deliverStatusAnswers(times:)``).
    struct StatusQuery: Sendable {
        let queryID: String
        let conversationID: String
        let resultURL: String
        let answer: String
        var delivered = 0
    }

    struct State {
        var stk: [Answer] = []
        var b2c: [Answer] = []
        var query: QueryAnswer = .pending
        var status: [Answer] = []
        /// The next POST is refused as if the token had been replaced.
        var expireTokenOnce = false
        var expiresIn: JSONValue = .string("3599")
        var currentToken: String?
        var tokensIssued = 0
        var requests: [Request] = []
        var violations: [String] = []
        var checkouts = 0
        /// The paybill's registered URLs (confirmation, validation).
        var c2bURLs: (confirmation: String, validation: String)?
        var c2bPayments = 0
        /// Paybill payments M-Pesa knows, by receipt (TransID).
        var paybills: [String: KnownPayment] = [:]
        /// B2C payments M-Pesa took, by our OriginatorConversationID.
        var payouts: [String: KnownPayment] = [:]
        var statusQueries: [StatusQuery] = []
        /// Safaricom gives each Transaction Status query an OriginatorConversationID of its own
        /// (in the acknowledgement and the answer) instead of echoing ours.
        var ownStatusOriginators = false
        /// The live gateway's base URL: callbacks go there, under the path the request named (the
        /// test gateway's port is chosen when it starts, after its callback URLs were configured).
        var gateway: String?
    }

    let state = Mutex(State())
    private let running = Mutex<(port: Int, task: Task<Void, any Error>?)>((0, nil))

    var port: Int { self.running.withLock { $0.port } }
    var baseURL: String { "http://127.0.0.1:\(self.port)" }

    /// Starts on a free port.
    static func start() async throws -> FakeDaraja {
        let fake = FakeDaraja()
        let server = await LocalServer.start(fake.router())
        fake.running.withLock { $0 = server }
        return fake
    }

    func stop() async {
        guard let task = self.running.withLock({ $0.task }) else { return }
        task.cancel()
        _ = try? await task.value
    }

    func configuration(gateway: String, token: String? = nil) -> DarajaConfiguration {
        let suffix = token.map { "/" + $0 } ?? ""
        var configuration = DarajaConfiguration(
            baseURL: self.baseURL, consumerKey: Self.key, consumerSecret: Self.secret, shortcode: Self.shortcode, passkey: Self.passkey,
            b2cShortcode: Self.b2cShortcode, initiatorName: "testapi", securityCredential: "c2VjcmV0LWNyZWRlbnRpYWw=",
            stkCallbackURL: gateway + "/mpesa/stk/callback" + suffix, b2cResultURL: gateway + "/mpesa/b2c/result" + suffix,
            b2cTimeoutURL: gateway + "/mpesa/b2c/timeout" + suffix
        )
        configuration.requestTimeout = .seconds(2)
        configuration.c2bInitiatorName = Self.c2bInitiator
        configuration.c2bSecurityCredential = Self.c2bCredential
        return configuration
    }

    var violations: [String] { self.state.withLock { $0.violations } }
    func requests(_ path: String) -> [Request] { self.state.withLock { $0.requests.filter { $0.path == path } } }
    var tokensIssued: Int { self.state.withLock { $0.tokensIssued } }

    // MARK: What M-Pesa knows, and its answers

    /// Records a paybill payment M-Pesa knows under `transID` (what Transaction Status reports).
    func knowPaybill(_ transID: String, shillings: Int, shortcode: String = FakeDaraja.shortcode, status: String = "Completed", phone: String = "254708374149") {
        self.state.withLock {
            $0.paybills[transID] = KnownPayment(shillings: shillings, shortcode: shortcode, phone: phone, status: status, receipt: transID)
        }
    }

    /// What M-Pesa says became of the B2C payment of `originator`, from now on.
    func setPayoutStatus(_ originator: String, _ status: String) {
        self.state.withLock { $0.payouts[originator]?.status = status }
    }

    /// The ConversationID the fake acknowledged the B2C request `originator` with.
    func conversationID(of originator: String) -> String? {
        self.state.withLock { $0.payouts[originator]?.conversationID }
    }

    /// A B2C result for `originator` as Safaricom posts it: the acknowledged ConversationID (or
    /// `conversation` when a test forges one), the receipt and amount of the payment on success.
    func b2cResult(_ originator: String, code: Int, conversation: String? = nil) -> String {
        let known = self.state.withLock { $0.payouts[originator] }
        var parameters: [(String, String)] = []
        if code == 0, let known {
            parameters = [
                ("TransactionAmount", String(known.shillings)), ("TransactionReceipt", quotedJSON(known.receipt)),
                ("ReceiverPartyPublicName", quotedJSON(known.phone + " - " + FakeDaraja.payerName.uppercased())), ("TransactionCompletedDateTime", quotedJSON("06.07.2024 22:48:52")),
                ("B2CUtilityAccountAvailableFunds", "8959269.60"), ("B2CRecipientIsRegisteredCustomer", quotedJSON("Y")),
            ]
        }
        let description = code == 0 ? "The service request is processed successfully." : "The receiver is not a registered M-Pesa customer."
        return Self.result(
            originator, conversation: conversation ?? known?.conversationID ?? "AG_never_acknowledged", code: String(code), description: description,
            transactionID: code == 0 ? known?.receipt ?? "" : "", parameters: parameters
        )
    }

    /// The Transaction Status queries the fake accepted, oldest first.
    var statusQueries: [StatusQuery] { self.state.withLock { $0.statusQueries } }

    /// Posts Safaricom's answer to every accepted Transaction Status query not yet answered (or, with
    /// `again`, to all of them once more) to the result URL each named; returns how many.
    @discardableResult
    func deliverStatusAnswers(again: Bool = false, http: CurlClient) async throws -> Int {
        let due = self.state.withLock { state -> [(Int, StatusQuery)] in
            state.statusQueries.enumerated().filter { again || $0.element.delivered == 0 }.map { ($0.offset, $0.element) }
        }
        for (index, query) in due {
            try await self.post(query.answer, to: query.resultURL, http: http)
            self.state.withLock { $0.statusQueries[index].delivered += 1 }
        }
        return due.count
    }

    /// Posts a body to a callback URL the gateway named, as Safaricom does (at the live gateway
    /// when one is set); expects the documented acknowledgement.
    func post(_ body: String, to url: String, http: CurlClient) async throws {
        let response = try await http.execute(
            CurlRequest(method: "POST", url: self.target(url), headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: .seconds(10))
        )
        guard response.status == 200 else { throw TestSetupError("the gateway answered \(response.status) to a callback") }
    }

    /// `url` at the live gateway, when one is set.
    func target(_ url: String) -> String {
        guard let gateway = self.state.withLock({ $0.gateway }), var components = URLComponents(string: url), let live = URLComponents(string: gateway) else {
            return url
        }
        (components.scheme, components.host, components.port) = (live.scheme, live.host, live.port)
        return components.string ?? url
    }

    /// Safaricom's answer to a Transaction Status query (docs/reference/daraja.md, the portal's
    /// sample): Completed or another final status with the payment's amount, parties and receipt
    /// for one M-Pesa knows, a non-zero ResultCode for one it does not.
    func statusAnswer(_ json: [String: JSONValue], conversation: String, originator: String? = nil) -> String {
        let queryID = originator ?? json["OriginatorConversationID"]?.string ?? ""
        let known: KnownPayment? = self.state.withLock { state in
            if let receipt = json["TransactionID"]?.string { return state.paybills[receipt] }
            return state.payouts[json["OriginalConversationID"]?.string ?? ""]
        }
        guard let known else {
            return Self.result(
                queryID, conversation: conversation, code: #""R000001""#, description: "The transaction receipt number does not exist.", transactionID: "",
                parameters: []
            )
        }
        let isPaybill = json["TransactionID"] != nil
        let (debit, credit) = isPaybill
            ? (known.phone + " - " + FakeDaraja.payerName, known.shortcode + " - Merchant")
            : (known.shortcode + " - Wallet Ltd", known.phone + " - " + FakeDaraja.payerName)
        return Self.result(
            queryID, conversation: conversation, code: "0", description: "The service request is processed successfully.", transactionID: known.receipt,
            parameters: [
                ("DebitPartyName", quotedJSON(debit)), ("CreditPartyName", quotedJSON(credit)), ("OriginatorConversationID", quotedJSON("3211-416020-3")),
                ("InitiatedTime", quotedJSON("20180223054112")), ("DebitAccountType", quotedJSON(isPaybill ? "MMF Account For Customer" : "Utility Account")),
                ("ReasonType", quotedJSON(isPaybill ? "Pay Bill Online" : "Business Payment to Customer via API")),
                ("TransactionStatus", quotedJSON(known.status)), ("FinalisedTime", quotedJSON("20180223054112")), ("Amount", quotedJSON(String(known.shillings))),
                ("ConversationID", quotedJSON(known.conversationID ?? "AG_20180223_000041b09c22e613d6c9")), ("ReceiptNo", quotedJSON(known.receipt)),
            ]
        )
    }

    /// The `Result` envelope; `code` as JSON.
    static func result(_ originator: String, conversation: String, code: String, description: String, transactionID: String, parameters: [(String, String)]) -> String {
        var body = #"{"Result":{"ResultType":0,"ResultCode":\#(code),"ResultDesc":\#(quotedJSON(description)),"OriginatorConversationID":\#(quotedJSON(originator)),"ConversationID":\#(quotedJSON(conversation)),"TransactionID":\#(quotedJSON(transactionID))"#
        if !parameters.isEmpty {
            body += #","ResultParameters":{"ResultParameter":["# + parameters.map { #"{"Key":"\#($0.0)","Value":\#($0.1)}"# }.joined(separator: ",") + "]}"
        }
        return body + #","ReferenceData":{"ReferenceItem":{"Key":"Occasion"}}}}"#
    }

    // MARK: Paybill payments

    /// What happened to a paybill payment the fake made.
    struct PaybillPayment: Sendable {
        let transID: String
        /// The validation URL's answer (`ResultCode`), when validation is on.
        let validation: String?
        /// The confirmation URL's answer was `{"ResultCode":0,...}`; nil when none was sent.
        let confirmed: Bool?
    }

    /// Posts a paybill confirmation M-Pesa never made (an attacker holding the callback token):
    /// the documented body to the registered confirmation URL; M-Pesa knows nothing of it.
    func forgeConfirmation(transID: String, account: String, amount: String, shortcode: String = FakeDaraja.shortcode, http: CurlClient) async throws -> Bool {
        guard let urls = self.state.withLock({ $0.c2bURLs }) else { throw TestSetupError("no C2B URLs registered") }
        let members: [String: JSONValue] = [
            "TransactionType": .string("Pay Bill"), "TransID": .string(transID), "TransTime": .string(DarajaClient.timestamp(Date())),
            "TransAmount": .string(amount), "BusinessShortCode": .string(shortcode), "BillRefNumber": .string(account), "InvoiceNumber": .string(""),
            "OrgAccountBalance": .string("49197.00"), "ThirdPartyTransID": .string(""), "MSISDN": .string("2547 ***** 126"),
            "FirstName": .string(FakeDaraja.payerFirstName), "MiddleName": .string(""), "LastName": .string(FakeDaraja.payerLastName),
        ]
        let reply = try await http.execute(
            CurlRequest(method: "POST", url: urls.confirmation, headers: [("Content-Type", "application/json")], body: Array(JSONValue.object(members).serialized.utf8))
        )
        return reply.status == 200 && JSONValue.parse(reply.body)?["ResultCode"] == .integer(0)
    }

    /// Plays Safaricom for a customer paying the paybill: the validation URL first when
    /// `validation` is on, then, unless it rejected (or `confirm` is false: the confirmation lost),
    /// the confirmation URL, each with the documented body (the payer's number masked).
    func payBill(
        account: String, amount: String, validation: Bool = true, confirm: Bool = true, transID: String? = nil, http: CurlClient,
        shortcode: String = FakeDaraja.shortcode
    ) async throws -> PaybillPayment {
        guard let urls = self.state.withLock({ $0.c2bURLs }) else { throw TestSetupError("no C2B URLs registered") }
        let n = self.state.withLock { state -> Int in
            state.c2bPayments += 1
            return state.c2bPayments
        }
        let id = transID ?? "SK\(String(format: "%04d", self.port % 10_000))\(String(format: "%04d", n))"
        func body(balance: String) -> [UInt8] {
            let members: [String: JSONValue] = [
                "TransactionType": .string("Pay Bill"), "TransID": .string(id), "TransTime": .string(DarajaClient.timestamp(Date())),
                "TransAmount": .string(amount), "BusinessShortCode": .string(shortcode), "BillRefNumber": .string(account), "InvoiceNumber": .string(""),
                "OrgAccountBalance": .string(balance), "ThirdPartyTransID": .string(""), "MSISDN": .string("2547 ***** 126"),
                "FirstName": .string(FakeDaraja.payerFirstName), "MiddleName": .string(""), "LastName": .string(FakeDaraja.payerLastName),
            ]
            return Array(JSONValue.object(members).serialized.utf8)
        }
        var answer: String?
        if validation {
            let reply = try await http.execute(
                CurlRequest(method: "POST", url: urls.validation, headers: [("Content-Type", "application/json")], body: body(balance: ""), timeout: .seconds(8))
            )
            answer = JSONValue.parse(reply.body)?["ResultCode"]?.string
            if answer != "0" { return PaybillPayment(transID: id, validation: answer, confirmed: nil) }
        }
        guard confirm else { return PaybillPayment(transID: id, validation: answer, confirmed: nil) }
        // The payment is made: M-Pesa knows it (unless it was made earlier under this TransID).
        self.state.withLock { state in
            if state.paybills[id] == nil, let cents = C2BAmount.cents(amount) {
                state.paybills[id] = KnownPayment(
                    shillings: Int(cents / 100), shortcode: shortcode, phone: "254708374149", status: "Completed", receipt: id
                )
            }
        }
        let reply = try await http.execute(
            CurlRequest(method: "POST", url: urls.confirmation, headers: [("Content-Type", "application/json")], body: body(balance: "49197.00"))
        )
        let json = JSONValue.parse(reply.body)
        return PaybillPayment(transID: id, validation: answer, confirmed: reply.status == 200 && json?["ResultCode"] == .integer(0))
    }

    // MARK: Server

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/oauth/v1/generate") { request, _ -> Response in self.oauth(request) }
        for path in [
            "/mpesa/stkpush/v1/processrequest", "/mpesa/stkpushquery/v1/query", "/mpesa/b2c/v3/paymentrequest", "/mpesa/transactionstatus/v1/query",
            "/mpesa/c2b/v2/registerurl",
        ] {
            router.post(RouterPath(path)) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                return await self.post(path, request, Array(body.readableBytesView))
            }
        }
        return router
    }

    private func oauth(_ request: HummingbirdCore.Request) -> Response {
        let expected = "Basic " + Data("\(Self.key):\(Self.secret)".utf8).base64EncodedString()
        guard request.uri.query == "grant_type=client_credentials" else {
            return self.refuse("oauth without grant_type=client_credentials", status: 400, code: "400.008.02", message: "Invalid grant type passed")
        }
        guard request.headers[.authorization] == expected else {
            return self.refuse("oauth with wrong Basic credentials", status: 400, code: "400.008.01", message: "Invalid Authentication passed")
        }
        let (token, expiresIn) = self.state.withLock { state in
            state.tokensIssued += 1
            // Each new token invalidates the previous one, as Daraja does.
            state.currentToken = "token-\(state.tokensIssued)-\(UUID().uuidString.prefix(8))"
            return (state.currentToken!, state.expiresIn)
        }
        let lifetime: String
        switch expiresIn {
        case .integer(let number): lifetime = String(number)
        default: lifetime = "\"\(expiresIn.string ?? "3599")\""
        }
        return Self.json(200, #"{"access_token":"\#(token)","expires_in":\#(lifetime)}"#)
    }

    private func post(_ path: String, _ request: HummingbirdCore.Request, _ body: [UInt8]) async -> Response {
        guard request.headers[.contentType] == "application/json" else {
            // Daraja's misleading answer to a missing Content-Type.
            return self.refuse("\(path) without Content-Type application/json", status: 400, code: "400.002.02", message: "Bad Request - Invalid BusinessShortCode")
        }
        let bearer = request.headers[.authorization] ?? ""
        let expire = self.state.withLock { state -> Bool in
            defer { state.expireTokenOnce = false }
            return state.expireTokenOnce
        }
        let current = self.state.withLock { $0.currentToken }
        if expire || current == nil || bearer != "Bearer " + (current ?? "") {
            if !expire { self.state.withLock { $0.violations.append("\(path) with a stale or missing token") } }
            if expire { self.state.withLock { $0.currentToken = nil } }
            return Self.json(401, #"{"requestId":"x","errorCode":"404.001.03","errorMessage":"Invalid Access Token"}"#)
        }
        guard let parsed = JSONValue.parse(body), case .object(let json) = parsed else {
            return self.refuse("\(path) body is not a JSON object", status: 400, code: "400.002.05", message: "Invalid Request Payload")
        }
        let problems = Self.check(path, json)
        if !problems.isEmpty {
            return self.refuse(problems.joined(separator: "; "), status: 400, code: "400.002.02", message: "Bad Request - " + problems[0])
        }
        let traceparent = request.headers[HTTPField.Name("traceparent")!]
        self.state.withLock { $0.requests.append(Request(path: path, json: json, traceparent: traceparent)) }
        switch path {
        case "/mpesa/stkpush/v1/processrequest":
            switch self.next(\.stk) {
            case .accept:
                let n = self.state.withLock { state -> Int in
                    state.checkouts += 1
                    return state.checkouts
                }
                let checkout = "ws_CO_\(Int(Date().timeIntervalSince1970))\(self.port)\(n)"
                return Self.json(
                    200,
                    #"{"MerchantRequestID":"29115-\#(n)","CheckoutRequestID":"\#(checkout)","ResponseCode":"0","ResponseDescription":"Success. Request accepted for processing","CustomerMessage":"Success. Request accepted for processing"}"#
                )
            case .error(let status, let code, let message): return Self.error(status, code, message)
            case .hang: return await Self.hang()
            }
        case "/mpesa/stkpushquery/v1/query":
            switch self.state.withLock({ $0.query }) {
            case .pending:
                return Self.error(500, "500.001.1001", "The transaction is being processed")
            case .paid:
                return Self.json(200, #"{"ResponseCode":"0","ResponseDescription":"The service request has been accepted successsfully","MerchantRequestID":"1","CheckoutRequestID":"\#(json["CheckoutRequestID"]?.string ?? "")","ResultCode":"0","ResultDesc":"The service request is processed successfully."}"#)
            case .failed(let code, let text):
                return Self.json(200, #"{"ResponseCode":"0","ResponseDescription":"accepted","MerchantRequestID":"1","CheckoutRequestID":"\#(json["CheckoutRequestID"]?.string ?? "")","ResultCode":"\#(code)","ResultDesc":"\#(text)"}"#)
            }
        case "/mpesa/c2b/v2/registerurl":
            self.state.withLock {
                $0.c2bURLs = (json["ConfirmationURL"]?.string ?? "", json["ValidationURL"]?.string ?? "")
            }
            return Self.json(200, #"{"OriginatorCoversationID":"6e86-45dd-91ac-fd5d4178ab52\#(self.port)","ResponseCode":"0","ResponseDescription":"Success"}"#)
        case "/mpesa/b2c/v3/paymentrequest":
            let answer = self.next(\.b2c)
            let originator = json["OriginatorConversationID"]?.string ?? ""
            var conversation = "AG_\(UUID().uuidString.prefix(8))"
            if case .error = answer {} else {
                // Taken (a hung call too: only its answer is lost), and paid as asked unless a test
                // says otherwise (setPayoutStatus). A duplicate keeps the first.
                conversation = self.state.withLock { state in
                    if let known = state.payouts[originator] { return known.conversationID ?? conversation }
                    state.payouts[originator] = KnownPayment(
                        shillings: Int(json["Amount"]?.string ?? "") ?? 0, shortcode: json["PartyA"]?.string ?? "", phone: json["PartyB"]?.string ?? "",
                        status: "Completed", receipt: "SG" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).uppercased(),
                        conversationID: conversation
                    )
                    return conversation
                }
            }
            switch answer {
            case .accept:
                return Self.json(200, #"{"ConversationID":"\#(conversation)","OriginatorConversationID":"\#(originator)","ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#)
            case .error(let status, let code, let message): return Self.error(status, code, message)
            case .hang: return await Self.hang()
            }
        default:
            switch self.next(\.status) {
            case .accept:
                let conversation = "AG_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20))"
                let own = self.state.withLock { $0.ownStatusOriginators }
                let originator = own ? "29115-\(Int.random(in: 10_000_000...99_999_999))-1" : json["OriginatorConversationID"]?.string ?? ""
                let query = StatusQuery(
                    queryID: originator, conversationID: conversation, resultURL: json["ResultURL"]?.string ?? "",
                    answer: self.statusAnswer(json, conversation: conversation, originator: originator)
                )
                self.state.withLock { $0.statusQueries.append(query) }
                return Self.json(200, #"{"OriginatorConversationID":"\#(query.queryID)","ConversationID":"\#(conversation)","ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#)
            case .error(let status, let code, let message): return Self.error(status, code, message)
            case .hang: return await Self.hang()
            }
        }
    }

    /// The next scripted answer for an endpoint; `.accept` once the script runs out.
    private func next(_ key: WritableKeyPath<State, [Answer]>) -> Answer {
        self.state.withLock { state in state[keyPath: key].isEmpty ? .accept : state[keyPath: key].removeFirst() }
    }

    private func refuse(_ violation: String, status: Int, code: String, message: String) -> Response {
        self.state.withLock { $0.violations.append(violation) }
        return Self.error(status, code, message)
    }

    private static func hang() async -> Response {
        // Daraja taking longer than the gateway waits: a real outside delay, played.
        try? await Task.sleep(for: .seconds(3))
        return Self.error(504, "504.000.00", "late")
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        Self.json(status, #"{"requestId":"fake-\#(UUID().uuidString.prefix(6))","errorCode":"\#(code)","errorMessage":"\#(message)"}"#)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: The rules

    /// Daraja's rules, shared with the embedded sandbox; this fake's app is a paybill.
    static let rules = DarajaRequestRules(shortcode: FakeDaraja.shortcode, passkey: FakeDaraja.passkey, b2cShortcode: FakeDaraja.b2cShortcode)

    static func check(_ path: String, _ json: [String: JSONValue]) -> [String] {
        var problems = Self.rules.problems(path, json)
        if path == DarajaRequestRules.stkPush && json["TransactionType"]?.string != "CustomerPayBillOnline" { problems.append("TransactionType") }
        if path == DarajaRequestRules.transactionStatus {
            // Each party's own initiator: the paybill's asks about its receipts, the B2C one about payouts.
            let paybill = json["TransactionID"] != nil
            let (initiator, credential) = paybill ? (Self.c2bInitiator, Self.c2bCredential) : ("testapi", "c2VjcmV0LWNyZWRlbnRpYWw=")
            if json["Initiator"]?.string != initiator || json["SecurityCredential"]?.string != credential {
                problems.append("Initiator is not the \(paybill ? "paybill's" : "B2C") initiator")
            }
        }
        return problems
    }
}

/// A Hummingbird server on a free loopback port, run in a task of its own until cancelled.
enum LocalServer {
    /// A fake's server: its port once started, stopped by cancelling its task.
    final class Handle: Sendable {
        private let running = Mutex<(port: Int, task: Task<Void, any Error>?)>((0, nil))

        var port: Int { self.running.withLock { $0.port } }

        func start(_ router: Router<BasicRequestContext>) async {
            let server = await LocalServer.start(router)
            self.running.withLock { $0 = server }
        }

        func stop() async {
            guard let task = self.running.withLock({ $0.task }) else { return }
            task.cancel()
            _ = try? await task.value
        }
    }

    static func start(_ router: Router<BasicRequestContext>) async -> (port: Int, task: Task<Void, any Error>?) {
        let (ready, signal) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in signal.yield(channel.localAddress?.port ?? 0) }
        )
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ready.makeAsyncIterator()
        return (await iterator.next() ?? 0, task)
    }
}

/// `text` as a JSON string literal.
func quotedJSON(_ text: String) -> String {
    JSONValue.string(text).serialized
}

/// A C2B `TransAmount` (`"750"`, `"750.00"`) in cents, as the tests write them.
enum C2BAmount {
    static func cents(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1)
        guard let whole = parts.first.flatMap({ Int64($0) }) else { return nil }
        let fraction = parts.count == 2 ? Int64(String(parts[1].prefix(2)).padding(toLength: 2, withPad: "0", startingAt: 0)) ?? 0 : 0
        return whole * 100 + fraction
    }
}
