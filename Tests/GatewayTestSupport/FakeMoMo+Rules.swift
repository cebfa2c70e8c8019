import Basics
import Curl
import Foundation
import HTTPTypes
import Hummingbird
import MoMo

/// The fake's answers to the calls that carry a token: the rules every one keeps, the create calls
/// (request to pay, transfer) and their status queries.
extension FakeMoMo {
    /// The headers every product call carries: the product's subscription key, the configured
    /// target environment and a bearer token this fake issued for that product, not expired.
    /// Returns MoMo's refusal, or nil when the call may go on.
    func check(_ product: MoMoClient.Product, _ request: HummingbirdCore.Request) -> Response? {
        let credentials = product == .collection ? Self.collection : Self.disbursement
        guard Self.header(request, "Ocp-Apim-Subscription-Key") == credentials.subscriptionKey else {
            return self.refuse("\(request.uri.path) without the \(product) subscription key", 401, nil, "Access denied due to invalid subscription key.")
        }
        let environment = self.state.withLock { $0.environment }
        guard Self.header(request, "X-Target-Environment") == environment else {
            return self.refuse("\(request.uri.path) with X-Target-Environment other than \(environment)", 400, "NOT_ALLOWED_TARGET_ENVIRONMENT", "Access to target environment is forbidden.")
        }
        let bearer = request.headers[.authorization] ?? ""
        guard bearer.hasPrefix("Bearer ") else {
            return self.refuse("\(request.uri.path) without a bearer token", 401, nil, "Access denied due to missing access token.")
        }
        let token = String(bearer.dropFirst("Bearer ".count))
        let (issued, revoked) = self.state.withLock { ($0.tokens[token], $0.revoked.contains(token)) }
        if revoked { return Self.error(401, nil, "Access denied due to invalid or expired token.") }
        guard let issued, issued.product == product, issued.expires > Date() else {
            return self.refuse("\(request.uri.path) with a token not issued for \(product) or expired", 401, nil, "Access denied due to invalid or expired token.")
        }
        return nil
    }

    /// `POST /collection/v1_0/requesttopay` or `POST /disbursement/v1_0/transfer`.
    func create(_ product: MoMoClient.Product, _ request: HummingbirdCore.Request, _ body: [UInt8]) async -> Response {
        if let refusal = self.check(product, request) { return refusal }
        let path = request.uri.path
        let mediaType = Self.header(request, "Content-Type")?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard mediaType == "application/json" else {
            return self.refuse("\(path) without Content-Type application/json", 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type")
        }
        guard let reference = Self.header(request, "X-Reference-Id"), Self.isUUIDv4(reference) else {
            return self.refuse("\(path) without an X-Reference-Id that is a UUID v4", 400, "INVALID_REFERENCE_ID", "Reference id is not a valid UUID v4")
        }
        let callback = Self.header(request, "X-Callback-Url")
        let environment = self.state.withLock { $0.environment }
        if let callback, !Self.isCallbackURL(callback, sandbox: environment == "sandbox") {
            return self.refuse("\(path) with an X-Callback-Url that is not an absolute http(s) URL", 400, "INVALID_CALLBACK_URL_HOST", "Callback URL host is invalid")
        }
        let role = product == .collection ? "payer" : "payee"
        guard let parsed = JSONValue.parse(body), case .object(let json) = parsed else {
            return self.refuse("\(path) body is not a JSON object", 400, "INVALID_REQUEST", "Request body is not valid JSON")
        }
        let problems = self.problems(json, role: role)
        if !problems.isEmpty { return self.refuse("\(path): " + problems.joined(separator: "; "), 400, "INVALID_REQUEST", "Bad request") }
        let partyId = json[role]?["partyId"]?.string ?? ""
        let answer = self.state.withLock { state -> Response? in
            if state.movements[reference] != nil { return Self.error(409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed.") }
            if let refusal = state.refusals[partyId] { return Self.error(refusal.status, refusal.code, refusal.message) }
            let outcome = state.outcomes[partyId] ?? state.defaultOutcome
            state.movements[reference] = Movement(
                product: product, reference: reference, amount: json["amount"]?.string ?? "", currency: json["currency"]?.string ?? "",
                externalId: json["externalId"]?.string ?? "", partyId: partyId, payerMessage: json["payerMessage"]?.string ?? "",
                payeeNote: json["payeeNote"]?.string ?? "", callbackURL: callback, outcome: outcome,
                financialTransactionId: String(Int.random(in: 100_000_000...999_999_999))
            )
            if outcome == .successful { state.paid[reference, default: 0] += 1 }
            return nil
        }
        if let answer { return answer }
        let (drop, hang, delivery) = self.state.withLock { state in
            defer { state.dropNextCreateAnswer = false }
            return (state.dropNextCreateAnswer, state.hangSeconds, state.callbackDelivery)
        }
        if drop {
            // Taken, but the answer comes later than the client waits: a real outside delay, played.
            try? await Task.sleep(for: .seconds(hang))
        }
        if case .afterAnswer(let times) = delivery, callback != nil, self.movement(reference)?.outcome != .pending {
            Task { try? await self.postCallbacks(for: reference, times: times, http: self.callbackClientForDelivery) }
        }
        return Response(status: .accepted)
    }

    /// `GET .../requesttopay/{referenceId}` or `.../transfer/{referenceId}`.
    func status(_ product: MoMoClient.Product, _ request: HummingbirdCore.Request, _ reference: String) -> Response {
        if let refusal = self.check(product, request) { return refusal }
        let failing = self.state.withLock { state -> Bool in
            guard state.failStatusQueries > 0 else { return false }
            state.failStatusQueries -= 1
            return true
        }
        if failing { return Self.error(500, "INTERNAL_PROCESSING_ERROR", "An internal error occurred while processing.") }
        guard let movement = self.movement(reference), movement.product == product else {
            return Self.error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        }
        return Self.json(200, self.statusBody(movement))
    }

    /// `RequestToPayResult` / `TransferResult`, as the status query answers it and the callback
    /// carries it.
    func statusBody(_ movement: Movement) -> String {
        let reasonAsObject = self.state.withLock { $0.reasonAsObject }
        var members: [String: JSONValue] = [
            "amount": .string(movement.amount), "currency": .string(movement.currency), "externalId": .string(movement.externalId),
            (movement.product == .collection ? "payer" : "payee"): .object(["partyIdType": .string("MSISDN"), "partyId": .string(movement.partyId)]),
            "payerMessage": .string(movement.payerMessage), "payeeNote": .string(movement.payeeNote),
        ]
        switch movement.outcome {
        case .successful:
            members["status"] = .string("SUCCESSFUL")
            members["financialTransactionId"] = .string(movement.financialTransactionId)
        case .pending:
            members["status"] = .string("PENDING")
        case .failed(let reason):
            members["status"] = .string("FAILED")
            members["reason"] = reasonAsObject ? .object(["code": .string(reason), "message": .string("The transaction failed.")]) : .string(reason)
        }
        return JSONValue.object(members).serialized
    }

    /// The body of a create call: exactly the documented keys, each in its documented shape.
    func problems(_ json: [String: JSONValue], role: String) -> [String] {
        var problems: [String] = []
        let expected: Set<String> = ["amount", "currency", "externalId", role, "payerMessage", "payeeNote"]
        let keys = Set(json.keys)
        if keys != expected { problems.append("keys \(keys.sorted()) are not \(expected.sorted())") }
        if case .string(let amount)? = json["amount"], MoMoAmount.minorUnits(amount, decimals: 6).map({ $0 > 0 }) == true {} else {
            problems.append("amount is not a string of digits with optional decimals")
        }
        let currency = self.state.withLock { $0.currency }
        if json["currency"] != .string(currency) { problems.append("currency is not \(currency)") }
        if case .string(let id)? = json["externalId"], !id.isEmpty {} else { problems.append("externalId is not a non-empty string") }
        for key in ["payerMessage", "payeeNote"] {
            if case .string? = json[key] {} else { problems.append("\(key) is not a string") }
        }
        guard case .object(let party)? = json[role] else { return problems + ["\(role) is not an object"] }
        if Set(party.keys) != ["partyIdType", "partyId"] || party["partyIdType"] != .string("MSISDN") {
            problems.append("\(role) is not {partyIdType: MSISDN, partyId}")
        }
        if case .string(let id)? = party["partyId"], !id.isEmpty, id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {} else {
            problems.append("\(role).partyId is not a string of digits")
        }
        return problems
    }

    static func header(_ request: HummingbirdCore.Request, _ name: String) -> String? {
        request.headers[HTTPField.Name(name)!]
    }

    /// 8-4-4-4-12 hex, version 4, RFC 4122 variant (either case, as MoMo's validation reads it).
    static func isUUIDv4(_ text: String) -> Bool {
        let bytes = Array(text.lowercased().utf8)
        guard bytes.count == 36, UUID(uuidString: text) != nil else { return false }
        return bytes[14] == UInt8(ascii: "4") && "89ab".utf8.contains(bytes[19])
    }

    /// An absolute URL; https, or http in the sandbox (MTN's sandbox posts over http).
    static func isCallbackURL(_ text: String, sandbox: Bool) -> Bool {
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty else { return false }
        return url.scheme == "https" || (url.scheme == "http" && (sandbox || host == "127.0.0.1" || host == "localhost"))
    }
}
