import Basics
import Curl
import Foundation
import GatewayTelemetry
import Logging

extension MoMoClient {
    /// Sends a call with the product's current token; on 401, drops that token, fetches a new one
    /// and sends the call once more (a 401 is a refusal: nothing was taken).
    func authorized(
        _ product: Product, method: String, path: String, headers: [(name: String, value: String)], body: [UInt8]?
    ) async throws(MoMoError) -> CurlResponse {
        let token = try await self.token(product)
        let first = try await self.send(product, method: method, path: path, headers: headers, body: body, token: token)
        guard first.status == 401 else { return first }
        self.logger.notice("MoMo refused the access token; refreshing once", metadata: ["product": .string(product.rawValue)])
        await self.tokenCache(product).invalidate(token)
        return try await self.send(product, method: method, path: path, headers: headers, body: body, token: try await self.token(product))
    }

    private func send(
        _ product: Product, method: String, path: String, headers: [(name: String, value: String)], body: [UInt8]?, token: String
    ) async throws(MoMoError) -> CurlResponse {
        let request = CurlRequest(
            method: method, url: self.configuration.baseURL + path,
            headers: [
                ("Authorization", "Bearer " + token), ("X-Target-Environment", self.configuration.targetEnvironment),
                ("Ocp-Apim-Subscription-Key", self.credentials(product).subscriptionKey), ("Accept", "application/json"),
            ] + headers + Self.traced,
            body: body, timeout: self.configuration.requestTimeout
        )
        return try await self.timed(Self.endpoint(method, path)) { () async throws(MoMoError) -> CurlResponse in try await self.execute(request) }
    }

    private func execute(_ request: CurlRequest) async throws(MoMoError) -> CurlResponse {
        do {
            return try await self.http.execute(request)
        } catch let error as CurlError {
            throw .transport(error)
        } catch {
            throw .cancelled
        }
    }

    /// The `traceparent` of a call made inside a traced request (``HopTrace``).
    static var traced: [(name: String, value: String)] {
        HopTrace.outbound().map { [("traceparent", $0)] } ?? []
    }

    /// Runs a call and records its time under `endpoint`: `ok` for a 2xx, `refused` for a 4xx,
    /// `error` for anything else (5xx, no answer).
    private func timed(_ endpoint: String, _ call: () async throws(MoMoError) -> CurlResponse) async throws(MoMoError) -> CurlResponse {
        let start = ContinuousClock.now
        var outcome = "error"
        defer {
            self.metrics.timer("momo_request_duration_seconds", [("endpoint", endpoint), ("outcome", outcome)]).record(duration: ContinuousClock.now - start)
        }
        let response = try await call()
        outcome = (200..<300).contains(response.status) ? "ok" : (400..<500).contains(response.status) ? "refused" : "error"
        return response
    }

    /// A path's name in metrics: a fixed set, whatever the reference in it.
    static func endpoint(_ method: String, _ path: String) -> String {
        switch (method, path) {
        case ("POST", "/collection/token/"): "collection_token"
        case ("POST", "/disbursement/token/"): "disbursement_token"
        case ("POST", "/collection/v1_0/requesttopay"): "request_to_pay"
        case ("GET", _) where path.hasPrefix("/collection/v1_0/requesttopay/"): "request_to_pay_status"
        case ("POST", "/disbursement/v1_0/transfer"): "transfer"
        case ("GET", _) where path.hasPrefix("/disbursement/v1_0/transfer/"): "transfer_status"
        case ("GET", "/disbursement/v1_0/account/balance"): "disbursement_balance"
        default: "other"
        }
    }

    func credentials(_ product: Product) -> MoMoConfiguration.Credentials {
        product == .collection ? self.configuration.collection : self.configuration.disbursement
    }

    func tokenCache(_ product: Product) -> TokenCache {
        self.tokens[product]!
    }

    /// The product's cached token, or a fresh one fetched by exactly one caller.
    func token(_ product: Product) async throws(MoMoError) -> String {
        do {
            return try await self.tokenCache(product).current { try await self.fetchToken(product) }
        } catch let error as MoMoError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    /// `POST /{product}/token/` with Basic `apiUser:apiKey` and the subscription key.
    private func fetchToken(_ product: Product) async throws(MoMoError) -> (String, Duration) {
        let credentials = self.credentials(product)
        let basic = Data((credentials.apiUser + ":" + credentials.apiKey).utf8).base64EncodedString()
        let path = "/\(product.rawValue)/token/"
        let request = CurlRequest(
            method: "POST", url: self.configuration.baseURL + path,
            headers: [("Authorization", "Basic " + basic), ("Ocp-Apim-Subscription-Key", credentials.subscriptionKey), ("Accept", "application/json")]
                + Self.traced,
            body: [], timeout: self.configuration.requestTimeout
        )
        let response = try await self.timed(Self.endpoint("POST", path)) { () async throws(MoMoError) -> CurlResponse in try await self.execute(request) }
        guard response.status == 200 else {
            if (400..<500).contains(response.status) && response.status != 408 {
                throw MoMoError.refusal(status: response.status, body: response.body, secrets: self.configuration.secrets)
            }
            throw response.status >= 500 || response.status == 408 ? MoMoError.serverError(status: response.status) : MoMoError.malformedResponse(status: response.status)
        }
        guard let json = JSONValue.parse(response.body), let token = json["access_token"]?.string, !token.isEmpty, token.utf8.count <= 4096,
            let lifetime = json["expires_in"]?.integer, lifetime > 0
        else { throw .malformedResponse(status: response.status) }
        self.logger.debug("MoMo access token refreshed", metadata: ["product": .string(product.rawValue), "expires_in": .stringConvertible(lifetime)])
        return (token, .seconds(lifetime))
    }
}
