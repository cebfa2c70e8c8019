import Basics
import Curl
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MoMo
import Synchronization

/// A simulated MTN MoMo Open API inside the gateway process (`MOBILE_MONEY=mtn-momo` in development):
/// tokens per product, Collections' request to pay and Disbursements' transfer (each `202`, a
/// repeated `X-Reference-Id` refused with `409 RESOURCE_ALREADY_EXIST`), their status queries
/// (`404 RESOURCE_NOT_FOUND` for a reference it never took), the callback `PUT` to the request's
/// `X-Callback-Url`, and the disbursement balance. The gateway's real ``MoMoClient`` talks to it.
///
/// Outcomes follow ``SandboxRules`` by the last digit of the amount's whole units, as the Daraja
/// sandbox's do: 1 the customer rejects (`APPROVAL_REJECTED`; a payee not found for a transfer),
/// 2 not enough funds, 3 the prompt expires, 7 paid but no callback (the reconciler's status query
/// settles it), 8 the callback arrives twice; anything else is paid after the sandbox's delay.
public final class MoMoSandbox: Sendable {
    public static let pathPrefix = "/sandbox/momo"
    /// The simulated products' credentials. Not secrets: they open nothing but this simulation.
    public static let collection = (subscriptionKey: "sandbox-collection-key", apiUser: "0d3e5d2c-6f1a-4b8e-9c71-5a2f0e6b1c01", apiKey: "sandbox-collection-api-key")
    public static let disbursement = (subscriptionKey: "sandbox-disbursement-key", apiUser: "7a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c02", apiKey: "sandbox-disbursement-api-key")
    /// What the simulated disbursement account starts with, in minor units.
    static let startingBalance: Int64 = 100_000_000

    struct Movement: Sendable {
        let product: String
        let amount: String
        let currency: String
        let externalId: String
        let party: String
        var status = "PENDING"
        var reason: String?
        var financialTransactionId: String?
    }

    struct State {
        var tokens: [String: String] = [:]
        var movements: [String: Movement] = [:]
        var order: [String] = []
        var balance: Int64 = MoMoSandbox.startingBalance
    }

    let delay: Duration
    let inbox: SandboxInbox
    let scheduler: SandboxScheduler
    let http: CurlClient
    let currency: Currency
    let logger: Logger
    let state = Mutex(State())

    init(delay: Duration, inbox: SandboxInbox, scheduler: SandboxScheduler, http: CurlClient, currency: Currency, logger: Logger) {
        (self.delay, self.inbox, self.scheduler, self.http, self.currency, self.logger) = (delay, inbox, scheduler, http, currency, logger)
    }

    func register<Context: RequestContext>(on router: Router<Context>) {
        for product in ["collection", "disbursement"] {
            router.post(RouterPath(Self.pathPrefix + "/\(product)/token/")) { request, _ -> Response in self.token(product, request) }
        }
        for (product, kind) in [("collection", "requesttopay"), ("disbursement", "transfer")] {
            router.post(RouterPath(Self.pathPrefix + "/\(product)/v1_0/\(kind)")) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 16 * 1024)
                return self.create(product, request, Array(body.readableBytesView))
            }
            router.get(RouterPath(Self.pathPrefix + "/\(product)/v1_0/\(kind)/:reference")) { request, context -> Response in
                if let refusal = self.refusal(product, request) { return refusal }
                return self.status(product, context.parameters.get("reference") ?? "")
            }
        }
        router.get(RouterPath(Self.pathPrefix + "/disbursement/v1_0/account/balance")) { request, _ -> Response in
            if let refusal = self.refusal("disbursement", request) { return refusal }
            let balance = self.state.withLock { $0.balance }
            let amount = MoMoAmount.string(minorUnits: balance, decimals: self.currency.minorUnits) ?? "0"
            return Self.json(200, #"{"availableBalance":\#(quoted(amount)),"currency":\#(quoted(self.currency.code))}"#)
        }
    }

    static func credentials(_ product: String) -> (subscriptionKey: String, apiUser: String, apiKey: String) {
        product == "collection" ? Self.collection : Self.disbursement
    }

    func token(_ product: String, _ request: Request) -> Response {
        let credentials = Self.credentials(product)
        guard request.headers[HTTPField.Name("Ocp-Apim-Subscription-Key")!] == credentials.subscriptionKey else {
            return Self.json(401, #"{"statusCode":401,"message":"Access denied due to invalid subscription key."}"#)
        }
        guard request.headers[.authorization] == "Basic " + Data("\(credentials.apiUser):\(credentials.apiKey)".utf8).base64EncodedString() else {
            return Self.json(401, #"{"error":"login_failed"}"#)
        }
        let token = DarajaSandbox.randomToken(40)
        self.state.withLock { $0.tokens[product] = token }
        return Self.json(200, #"{"access_token":\#(quoted(token)),"token_type":"access_token","expires_in":3600}"#)
    }

    /// Why a call is not MoMo's to take: the product's key, its current token, the environment.
    func refusal(_ product: String, _ request: Request) -> Response? {
        guard request.headers[HTTPField.Name("Ocp-Apim-Subscription-Key")!] == Self.credentials(product).subscriptionKey else {
            return Self.json(401, #"{"statusCode":401,"message":"Access denied due to invalid subscription key."}"#)
        }
        let token = self.state.withLock { $0.tokens[product] }
        guard let token, request.headers[.authorization] == "Bearer " + token else { return Self.json(401, #"{"code":"NOT_AUTHORIZED"}"#) }
        guard request.headers[HTTPField.Name("X-Target-Environment")!] == "sandbox" else {
            return Self.error(400, "INVALID_TARGET_ENVIRONMENT", "the sandbox is X-Target-Environment: sandbox")
        }
        return nil
    }

    func create(_ product: String, _ request: Request, _ body: [UInt8]) -> Response {
        if let refusal = self.refusal(product, request) { return refusal }
        guard let reference = request.headers[HTTPField.Name("X-Reference-Id")!].flatMap({ MoMoReference(uuid: $0) }) else {
            return Self.error(400, "INVALID_REFERENCE_ID", "X-Reference-Id must be a UUID v4")
        }
        guard case .object(let fields)? = try? JSONValue.parseChecked(body).get(), case .string(let amount)? = fields["amount"],
            case .string(let currency)? = fields["currency"], case .string(let externalId)? = fields["externalId"],
            case .object(let party)? = fields[product == "collection" ? "payer" : "payee"], case .string("MSISDN")? = party["partyIdType"],
            case .string(let number)? = party["partyId"], let minor = MoMoAmount.minorUnits(amount, decimals: self.currency.minorUnits), (1...1_000_000_000_000).contains(minor)
        else { return Self.error(400, "INVALID_PARAMETER", "the body is not MoMo's shape") }
        let movement = Movement(product: product, amount: amount, currency: currency, externalId: externalId, party: number)
        let taken = self.state.withLock { state -> Bool in
            guard state.movements[reference.uuidString] == nil else { return false }
            state.movements[reference.uuidString] = movement
            state.order.append(reference.uuidString)
            if state.order.count > 10_000 { state.movements[state.order.removeFirst()] = nil }
            return true
        }
        guard taken else { return Self.error(409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed.") }
        let callbackURL = request.headers[HTTPField.Name("X-Callback-Url")!]
        let whole = Int(minor / self.currency.perMajor)
        self.scheduler.after(self.delay) { await self.settle(reference.uuidString, whole: whole, callbackURL: callbackURL) }
        return Response(status: .accepted)
    }

    /// The customer's (or MTN's) answer after the delay: the movement's status, the handset's
    /// message, and the callback as the rules say.
    func settle(_ reference: String, whole: Int, callbackURL: String?) async {
        guard var movement = self.state.withLock({ $0.movements[reference] }) else { return }
        var callbacks = 1
        if movement.product == "collection" {
            switch SandboxRules.stk(shillings: whole) {
            case .cancelled: (movement.status, movement.reason) = ("FAILED", "APPROVAL_REJECTED")
            case .insufficientFunds: (movement.status, movement.reason) = ("FAILED", "NOT_ENOUGH_FUNDS")
            case .unreachable: (movement.status, movement.reason) = ("FAILED", "EXPIRED")
            case .callbackLost: (movement.status, callbacks) = ("SUCCESSFUL", 0)
            case .callbackTwice: (movement.status, callbacks) = ("SUCCESSFUL", 2)
            case .approved: movement.status = "SUCCESSFUL"
            }
        } else {
            switch SandboxRules.b2c(shillings: whole) {
            case .unregisteredReceiver: (movement.status, movement.reason) = ("FAILED", "PAYEE_NOT_FOUND")
            case .timedOut: (movement.status, callbacks) = ("SUCCESSFUL", 0)
            case .resultTwice: (movement.status, callbacks) = ("SUCCESSFUL", 2)
            case .paid: movement.status = "SUCCESSFUL"
            }
        }
        if movement.status == "SUCCESSFUL" {
            movement.financialTransactionId = String((0..<9).map { _ in "0123456789".randomElement()! })
            let minor = MoMoAmount.minorUnits(movement.amount, decimals: self.currency.minorUnits) ?? 0
            let shown = self.currency.format(minor)
            self.state.withLock { $0.balance += movement.product == "collection" ? minor : -minor }
            self.inbox.deliver(
                to: "+" + movement.party, from: "MobileMoney",
                text: movement.product == "collection"
                    ? "You have paid \(shown) to WALLET. Financial Transaction Id: \(movement.financialTransactionId!). (sandbox)"
                    : "You have received \(shown) from WALLET. Financial Transaction Id: \(movement.financialTransactionId!). (sandbox)")
        }
        let settled = movement
        self.state.withLock { $0.movements[reference] = settled }
        guard let callbackURL else { return }
        if callbacks == 0 { self.logger.info("sandbox MoMo callback withheld (amount ends in 7): the reconciler's status query settles it") }
        for _ in 0..<callbacks { await self.callback(callbackURL, Self.body(settled)) }
    }

    func status(_ product: String, _ reference: String) -> Response {
        guard let movement = self.state.withLock({ $0.movements[reference] }), movement.product == product else {
            return Self.error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        }
        return Self.json(200, Self.body(movement))
    }

    /// A request to pay's or a transfer's result, as the status query and the callback carry it.
    static func body(_ movement: Movement) -> String {
        var fields: [String: JSONValue] = [
            "amount": .string(movement.amount), "currency": .string(movement.currency), "externalId": .string(movement.externalId),
            movement.product == "collection" ? "payer" : "payee": .object(["partyIdType": .string("MSISDN"), "partyId": .string(movement.party)]),
            "payerMessage": .string("Wallet"), "payeeNote": .string("Wallet"), "status": .string(movement.status),
        ]
        if let id = movement.financialTransactionId { fields["financialTransactionId"] = .string(id) }
        if let reason = movement.reason { fields["reason"] = .string(reason) }
        return JSONValue.object(fields).serialized
    }

    func callback(_ url: String, _ body: String) async {
        do {
            let response = try await self.http.execute(
                CurlRequest(method: "PUT", url: url, headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: .seconds(15)))
            if response.status != 200 { self.logger.warning("sandbox MoMo callback not taken", metadata: ["status": .stringConvertible(response.status)]) }
        } catch {
            self.logger.warning("sandbox MoMo callback not delivered", metadata: ["error": .string(String(describing: error))])
        }
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        Self.json(status, #"{"code":\#(quoted(code)),"message":\#(quoted(message))}"#)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
