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

/// A local Daraja that checks every request strictly against ../shared/reference/daraja.md and
/// answers as the scenario says. Anything off (a missing or extra key, a wrong Password or
/// Timestamp, a stale token, a field format) is recorded in `violations` and refused the way
/// Daraja refuses (400 with its error shape); tests expect `violations` to stay empty.
final class FakeDaraja: Sendable {
    static let key = "fake-consumer-key"
    static let secret = "fake-consumer-secret"
    static let shortcode = "174379"
    static let passkey = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
    static let b2cShortcode = "600992"

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
        return configuration
    }

    var violations: [String] { self.state.withLock { $0.violations } }
    func requests(_ path: String) -> [Request] { self.state.withLock { $0.requests.filter { $0.path == path } } }
    var tokensIssued: Int { self.state.withLock { $0.tokensIssued } }

    // MARK: Paybill payments

    /// What happened to a paybill payment the fake made.
    struct PaybillPayment: Sendable {
        let transID: String
        /// The validation URL's answer (`ResultCode`), when validation is on.
        let validation: String?
        /// The confirmation URL's answer was `{"ResultCode":0,...}`; nil when none was sent.
        let confirmed: Bool?
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
                "FirstName": .string("John"), "MiddleName": .string(""), "LastName": .string(""),
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
        self.state.withLock { $0.requests.append(Request(path: path, json: json)) }
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
            switch self.next(\.b2c) {
            case .accept:
                return Self.json(200, #"{"ConversationID":"AG_\#(UUID().uuidString.prefix(8))","OriginatorConversationID":"\#(json["OriginatorConversationID"]?.string ?? "")","ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#)
            case .error(let status, let code, let message): return Self.error(status, code, message)
            case .hang: return await Self.hang()
            }
        default:
            switch self.next(\.status) {
            case .accept:
                return Self.json(200, #"{"OriginatorConversationID":"\#(json["OriginatorConversationID"]?.string ?? "")","ConversationID":"AG_status","ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#)
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
