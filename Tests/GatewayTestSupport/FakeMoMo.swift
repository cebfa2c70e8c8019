import Basics
import Curl
import Foundation
import HTTPTypes
import Hummingbird
import MoMo
import Synchronization
import TestSupport

/// A local MTN MoMo Open API that checks every request strictly against docs/reference/mtn-momo.md
/// (method, path, headers, token, reference, body) and answers as the scenario says. Anything off
/// is recorded in `violations` and refused the way MoMo refuses; tests expect `violations` to stay
/// empty. It keeps every request to pay and transfer it accepted, with the outcome the test chose,
/// and counts how often each one moved money.
final class FakeMoMo: Sendable {
    static let collection = MoMoConfiguration.Credentials(
        subscriptionKey: "fake-collection-subscription-key-9f2c", apiUser: "3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f8a9b0c", apiKey: "fake-collection-api-key-71d3"
    )
    static let disbursement = MoMoConfiguration.Credentials(
        subscriptionKey: "fake-disbursement-subscription-key-4e8a", apiUser: "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", apiKey: "fake-disbursement-api-key-c05e"
    )

    /// What becomes of a request to pay or transfer MoMo takes.
    enum Outcome: Sendable, Equatable {
        case successful
        /// FAILED with this reason code (`APPROVAL_REJECTED`, `NOT_ENOUGH_FUNDS`, ...).
        case failed(reason: String)
        /// PENDING for ever (the customer never answers).
        case pending
    }

    /// When the fake posts a result to the request's `X-Callback-Url`.
    enum CallbackDelivery: Sendable, Equatable {
        /// Only when the test calls ``postCallbacks(for:times:method:http:)``.
        case manual
        /// Right after answering a create call whose outcome is final, `times` times.
        case afterAnswer(times: Int)
    }

    /// A request to pay or transfer the fake accepted.
    struct Movement: Sendable {
        let product: MoMoClient.Product
        let reference: String
        let amount: String
        let currency: String
        let externalId: String
        let partyId: String
        let payerMessage: String
        let payeeNote: String
        let callbackURL: String?
        var outcome: Outcome
        let financialTransactionId: String
    }

    /// A request as it came, for assertions on what the client sent.
    struct Request: Sendable {
        let method: String
        let path: String
        /// Header fields by lowercase name.
        let headers: [String: String]
        let json: JSONValue?
    }

    struct State {
        let environment: String
        let currency: String
        /// Outcome per customer number; ``defaultOutcome`` for the others.
        var outcomes: [String: Outcome] = [:]
        var defaultOutcome: Outcome = .successful
        /// Create calls for these numbers are refused with this status and MoMo error body.
        var refusals: [String: (status: Int, code: String, message: String)] = [:]
        /// The next create call is taken (and its money moved) but answered only after
        /// ``hangSeconds``, longer than the client waits: its outcome is unknown to the client.
        var dropNextCreateAnswer = false
        var hangSeconds = 3
        /// This many status queries are answered 500 before the real answer.
        var failStatusQueries = 0
        /// FAILED results carry `reason` as `{"code","message"}` (the published schema) instead of
        /// the bare code string MTN's platform sends.
        var reasonAsObject = false
        var callbackDelivery: CallbackDelivery = .manual
        var tokenLifetime = 3600
        var balance = "15000.50"
        /// Tokens issued, by value: the product and when they expire.
        var tokens: [String: (product: MoMoClient.Product, expires: Date)] = [:]
        var tokensIssued: [MoMoClient.Product: Int] = [:]
        /// Tokens the test withdrew (``revokeTokens()``): refused 401 without a violation.
        var revoked: Set<String> = []
        var movements: [String: Movement] = [:]
        /// How many times each reference moved money (a transfer paid, a payer debited).
        var paid: [String: Int] = [:]
        var requests: [Request] = []
        var violations: [String] = []
        var callbacksPosted = 0
    }

    let state: Mutex<State>
    private let server = LocalServer.Handle()
    /// Posts the callbacks ``CallbackDelivery/afterAnswer(times:)`` sends.
    private let callbackClient = CurlClient()
    var callbackClientForDelivery: CurlClient { self.callbackClient }

    private init(environment: String, currency: String) {
        self.state = Mutex(State(environment: environment, currency: currency))
    }

    /// Starts on a free loopback port, as the `environment` market in `currency` (MTN's sandbox
    /// accepts only EUR).
    static func start(environment: String = "sandbox", currency: String = "EUR") async throws -> FakeMoMo {
        let fake = FakeMoMo(environment: environment, currency: currency)
        await fake.server.start(fake.router())
        return fake
    }

    func stop() async {
        await self.server.stop()
        await self.callbackClient.shutdown()
    }

    var baseURL: String { "http://127.0.0.1:\(self.server.port)" }

    /// A client configuration for this fake; `callbackURL` is the base the client appends
    /// `/<referenceId>` to.
    func configuration(callbackURL: String? = nil) -> MoMoConfiguration {
        let (environment, currency) = self.state.withLock { ($0.environment, $0.currency) }
        var configuration = MoMoConfiguration(
            baseURL: self.baseURL, targetEnvironment: environment, currency: currency, currencyDecimals: 2, collection: Self.collection,
            disbursement: Self.disbursement, callbackURL: callbackURL
        )
        configuration.requestTimeout = .seconds(2)
        return configuration
    }

    var violations: [String] { self.state.withLock { $0.violations } }
    func tokensIssued(_ product: MoMoClient.Product) -> Int { self.state.withLock { $0.tokensIssued[product] ?? 0 } }
    func requests(_ method: String, _ prefix: String) -> [Request] {
        self.state.withLock { $0.requests.filter { $0.method == method && $0.path.hasPrefix(prefix) } }
    }
    func movement(_ reference: String) -> Movement? { self.state.withLock { $0.movements[reference] } }
    /// How many times the request or transfer under `reference` moved money: never more than one.
    func paidCount(_ reference: String) -> Int { self.state.withLock { $0.paid[reference] ?? 0 } }
    var callbacksPosted: Int { self.state.withLock { $0.callbacksPosted } }

    /// Changes what became of an accepted request (a pending one completes, say).
    func settle(_ reference: String, _ outcome: Outcome) {
        self.state.withLock { state in
            guard let before = state.movements[reference]?.outcome else { return }
            state.movements[reference]?.outcome = outcome
            if before != .successful && outcome == .successful { state.paid[reference, default: 0] += 1 }
        }
    }

    /// Withdraws every token issued so far: the next call with one is answered 401, as MoMo does
    /// when a token was revoked or its key rotated.
    func revokeTokens() {
        self.state.withLock { state in
            let issued = Array(state.tokens.keys)
            state.revoked.formUnion(issued)
        }
    }

    /// Posts the status body of the request under `reference` to its `X-Callback-Url`, `times`
    /// times (MTN posts once and never retries; twice tests a duplicate). Returns the statuses.
    @discardableResult
    func postCallbacks(for reference: String, times: Int = 1, method: String = "PUT", http: CurlClient) async throws -> [Int] {
        guard let movement = self.movement(reference), let url = movement.callbackURL else {
            throw TestSetupError("no accepted request with a callback URL under \(reference)")
        }
        let body = Array(self.statusBody(movement).utf8)
        var statuses: [Int] = []
        for _ in 0..<times {
            let response = try await http.execute(
                CurlRequest(method: method, url: url, headers: [("Content-Type", "application/json")], body: body, timeout: .seconds(5))
            )
            statuses.append(response.status)
            self.state.withLock { $0.callbacksPosted += 1 }
        }
        return statuses
    }

    // MARK: Server

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            return await self.handle(request, Array(body.readableBytesView))
        }
        router.get("**") { request, _ -> Response in await self.handle(request, []) }
        return router
    }

    private func handle(_ request: HummingbirdCore.Request, _ body: [UInt8]) async -> Response {
        let path = request.uri.path
        let method = request.method.rawValue
        self.record(method, path, request, body)
        switch (method, path) {
        case ("POST", "/collection/token/"): return self.token(.collection, request)
        case ("POST", "/disbursement/token/"): return self.token(.disbursement, request)
        case ("POST", "/collection/v1_0/requesttopay"): return await self.create(.collection, request, body)
        case ("POST", "/disbursement/v1_0/transfer"): return await self.create(.disbursement, request, body)
        case ("GET", _) where path.hasPrefix("/collection/v1_0/requesttopay/"):
            return self.status(.collection, request, String(path.dropFirst("/collection/v1_0/requesttopay/".count)))
        case ("GET", _) where path.hasPrefix("/disbursement/v1_0/transfer/"):
            return self.status(.disbursement, request, String(path.dropFirst("/disbursement/v1_0/transfer/".count)))
        case ("GET", "/disbursement/v1_0/account/balance"):
            if let refusal = self.check(.disbursement, request) { return refusal }
            let (balance, currency) = self.state.withLock { ($0.balance, $0.currency) }
            return Self.json(200, JSONValue.object(["availableBalance": .string(balance), "currency": .string(currency)]).serialized)
        default:
            return self.refuse("\(method) \(path) is not a MoMo endpoint", 404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        }
    }

    private func record(_ method: String, _ path: String, _ request: HummingbirdCore.Request, _ body: [UInt8]) {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let json = body.isEmpty ? nil : JSONValue.parse(body)
        self.state.withLock { $0.requests.append(Request(method: method, path: path, headers: headers, json: json)) }
    }

    /// `POST /{product}/token/`: Basic apiUser:apiKey and the product's subscription key.
    private func token(_ product: MoMoClient.Product, _ request: HummingbirdCore.Request) -> Response {
        let credentials = product == .collection ? Self.collection : Self.disbursement
        guard request.headers[HTTPField.Name("Ocp-Apim-Subscription-Key")!] == credentials.subscriptionKey else {
            return self.refuse("\(product) token without its subscription key", 401, nil, "Access denied due to invalid subscription key.")
        }
        let basic = "Basic " + Data((credentials.apiUser + ":" + credentials.apiKey).utf8).base64EncodedString()
        guard request.headers[.authorization] == basic else {
            return self.refuse("\(product) token with wrong Basic credentials", 401, "INVALID_CREDENTIALS", "Invalid credentials")
        }
        let (token, lifetime) = self.state.withLock { state in
            state.tokensIssued[product, default: 0] += 1
            let token = "momo-\(product.rawValue)-\(state.tokensIssued[product]!)-\(UUID().uuidString.prefix(8).lowercased())"
            state.tokens[token] = (product, Date().addingTimeInterval(Double(state.tokenLifetime)))
            return (token, state.tokenLifetime)
        }
        return Self.json(200, #"{"access_token":"\#(token)","token_type":"access_token","expires_in":\#(lifetime)}"#)
    }

    func refuse(_ violation: String, _ status: Int, _ code: String?, _ message: String) -> Response {
        self.state.withLock { $0.violations.append(violation) }
        return Self.error(status, code, message)
    }

    /// MoMo's error body; the API gateway's own shape (`statusCode`) when there is no code.
    static func error(_ status: Int, _ code: String?, _ message: String) -> Response {
        let body: JSONValue = code.map { .object(["code": .string($0), "message": .string(message)]) }
            ?? .object(["statusCode": .integer(Int64(status)), "message": .string(message)])
        return Self.json(status, body.serialized)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
