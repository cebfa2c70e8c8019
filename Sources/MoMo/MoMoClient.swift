import Basics
import Curl
import Foundation
import GatewayTelemetry
import Logging

/// An MTN MoMo Open API client over libcurl: Collections (request to pay: deposits) and
/// Disbursements (transfer: withdrawals), each with its own subscription key and access token.
///
/// A token is refreshed by a single caller `tokenRefreshMargin` before it expires while concurrent
/// callers wait; a 401 drops it and the call is retried once with a fresh one. Every request is
/// validated before it leaves. Create calls are idempotent by their ``MoMoReference``: after an
/// unknown outcome, ask the status (or send again under the same reference, which MoMo refuses as
/// ``MoMoError/duplicateReference`` if the first got there). Tokens, keys and bodies never reach
/// the log.
public final class MoMoClient: Sendable {
    /// The two products the gateway uses; each has its own credentials and tokens.
    public enum Product: String, Sendable, CaseIterable {
        case collection
        case disbursement
    }

    public let configuration: MoMoConfiguration
    let http: CurlClient
    let tokens: [Product: TokenCache]
    let logger: Logger
    /// `momo_request_duration_seconds{endpoint,outcome}`: every call's time, answered or not.
    let metrics: MetricCache

    public init(
        configuration: MoMoConfiguration, http: CurlClient, logger: Logger = Logger(label: "momo"), metrics: MetricCache = .discarding,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.configuration = configuration
        self.http = http
        self.logger = logger
        self.metrics = metrics
        self.tokens = Dictionary(uniqueKeysWithValues: Product.allCases.map { ($0, TokenCache(margin: configuration.tokenRefreshMargin, now: now)) })
    }

    // MARK: Collections

    /// Asks `payer` (MSISDN digits, E.164 without `+`) to approve paying `amount` (MoMo's amount
    /// string, see ``MoMoAmount``). Returns once MoMo accepted it (202): the outcome comes later,
    /// by ``requestToPayStatus(_:)`` or the callback.
    public func requestToPay(
        reference: MoMoReference, amount: String, externalID: String, payer: String, payerMessage: String, payeeNote: String
    ) async throws(MoMoError) {
        let body = try self.movement(amount: amount, externalID: externalID, party: ("payer", payer), payerMessage: payerMessage, payeeNote: payeeNote)
        try await self.create(.collection, "/collection/v1_0/requesttopay", reference: reference, body: body)
    }

    /// Where a request to pay stands. ``MoMoError/notFound`` means MoMo never took it.
    public func requestToPayStatus(_ reference: MoMoReference) async throws(MoMoError) -> MoMoTransaction {
        try await self.status(.collection, "/collection/v1_0/requesttopay/", reference: reference, party: .payer)
    }

    // MARK: Disbursements

    /// Pays `amount` to `payee` (MSISDN digits). Returns once MoMo accepted it (202).
    public func transfer(
        reference: MoMoReference, amount: String, externalID: String, payee: String, payerMessage: String, payeeNote: String
    ) async throws(MoMoError) {
        let body = try self.movement(amount: amount, externalID: externalID, party: ("payee", payee), payerMessage: payerMessage, payeeNote: payeeNote)
        try await self.create(.disbursement, "/disbursement/v1_0/transfer", reference: reference, body: body)
    }

    /// Where a transfer stands. A transfer whose status cannot be read is unknown, never failed;
    /// ``MoMoError/notFound`` means MoMo never took it (it may be sent again under the same reference).
    public func transferStatus(_ reference: MoMoReference) async throws(MoMoError) -> MoMoTransaction {
        try await self.status(.disbursement, "/disbursement/v1_0/transfer/", reference: reference, party: .payee)
    }

    /// The disbursement account's float, as MoMo writes it.
    public func disbursementBalance() async throws(MoMoError) -> (availableBalance: String, currency: String) {
        let path = "/disbursement/v1_0/account/balance"
        let response = try await self.authorized(.disbursement, method: "GET", path: path, headers: [], body: nil)
        guard response.status == 200 else { throw self.failure(response, creating: false) }
        guard let json = JSONValue.parse(response.body), let balance = json["availableBalance"]?.string, let currency = json["currency"]?.string,
            Self.isBalance(balance), currency.utf8.count == 3
        else { throw .malformedResponse(status: response.status) }
        return (balance, currency)
    }

    // MARK: Requests

    /// The body of a request to pay or transfer, its fields checked.
    private func movement(
        amount: String, externalID: String, party: (key: String, msisdn: String), payerMessage: String, payeeNote: String
    ) throws(MoMoError) -> [UInt8] {
        guard let units = MoMoAmount.minorUnits(amount, decimals: self.configuration.currencyDecimals), units > 0 else {
            throw .invalidRequest("amount must be positive digits with at most \(self.configuration.currencyDecimals) decimals")
        }
        guard (5...15).contains(party.msisdn.utf8.count), party.msisdn.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw .invalidRequest("\(party.key) must be 5-15 digits (E.164 without +)")
        }
        guard (1...64).contains(externalID.utf8.count), externalID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidRequest("externalId must be 1-64 printable ASCII characters without spaces")
        }
        for (name, text) in [("payerMessage", payerMessage), ("payeeNote", payeeNote)] {
            guard text.count <= 160, text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw .invalidRequest("\(name) must be at most 160 characters without control characters")
            }
        }
        let members: [String: JSONValue] = [
            "amount": .string(amount), "currency": .string(self.configuration.currency), "externalId": .string(externalID),
            party.key: .object(["partyIdType": .string("MSISDN"), "partyId": .string(party.msisdn)]),
            "payerMessage": .string(payerMessage), "payeeNote": .string(payeeNote),
        ]
        return Array(JSONValue.object(members).serialized.utf8)
    }

    /// POSTs a create call; 202 is success, 409 `RESOURCE_ALREADY_EXIST` a duplicate.
    private func create(_ product: Product, _ path: String, reference: MoMoReference, body: [UInt8]) async throws(MoMoError) {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json"), ("X-Reference-Id", reference.uuidString)]
        if let callback = self.configuration.callbackURL {
            try Self.checkCallbackURL(callback, environment: self.configuration.targetEnvironment)
            headers.append(("X-Callback-Url", callback + "/" + reference.uuidString))
        }
        let response = try await self.authorized(product, method: "POST", path: path, headers: headers, body: body)
        guard response.status == 202 else { throw self.failure(response, creating: true) }
    }

    /// GETs a status; 404 `RESOURCE_NOT_FOUND` is ``MoMoError/notFound``.
    private func status(_ product: Product, _ path: String, reference: MoMoReference, party: MoMoTransaction.Party.Role) async throws(MoMoError) -> MoMoTransaction {
        let response = try await self.authorized(product, method: "GET", path: path + reference.uuidString, headers: [], body: nil)
        guard response.status == 200 else { throw self.failure(response, creating: false) }
        do {
            return try MoMoTransaction(json: response.body, expecting: party)
        } catch {
            self.logger.warning("MoMo status answer malformed", metadata: ["product": .string(product.rawValue), "reason": .string(error.description)])
            throw .malformedResponse(status: response.status)
        }
    }

    /// What a non-success answer means: a duplicate or unknown reference, a refusal, or an
    /// outcome not known (5xx, 408, anything unexpected).
    private func failure(_ response: CurlResponse, creating: Bool) -> MoMoError {
        let refusal = MoMoError.refusal(status: response.status, body: response.body, secrets: self.configuration.secrets)
        switch response.status {
        case 409 where creating:
            // A create under a reference MoMo already holds means only that, whatever the body
            // says (a gateway in front of MoMo may answer its own shape): never a refusal, which
            // could release money an earlier attempt moved.
            return .duplicateReference
        case 404 where !creating:
            if case .refused(_, "RESOURCE_NOT_FOUND", _) = refusal { return .notFound }
            return refusal
        // Throttled, timed out or failing: the request may or may not have been taken.
        case 408, 429, 500...599: return .serverError(status: response.status)
        case 400...499: return refusal
        default: return .malformedResponse(status: response.status)
        }
    }

    /// https, or http in the sandbox (MTN's sandbox posts callbacks over http only) or to loopback.
    static func checkCallbackURL(_ url: String, environment: String) throws(MoMoError) {
        let loopback = url.hasPrefix("http://127.0.0.1:") || url.hasPrefix("http://localhost:") || url.hasPrefix("http://[::1]:")
        let allowed = url.hasPrefix("https://") || loopback || (environment == "sandbox" && url.hasPrefix("http://"))
        guard allowed, url.utf8.count <= 512, url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), URLComponents(string: url)?.host != nil else {
            throw .invalidRequest("callback URL must be an https URL")
        }
    }

    static func isBalance(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") ? String(text.dropFirst()) : text
        return MoMoAmount.minorUnits(digits, decimals: 6) != nil
    }
}
