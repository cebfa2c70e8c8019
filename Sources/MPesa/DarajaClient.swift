import Basics
import Curl
import Foundation
import GatewayTelemetry
import Logging

/// A Daraja API client over libcurl: OAuth, STK push and query, B2C and transaction status.
///
/// One access token per process (each new token invalidates the previous one): it is refreshed
/// by a single caller `tokenRefreshMargin` before it expires while concurrent callers wait for
/// that refresh, and an invalid-token answer drops it and retries the call once. Every request is
/// validated before it leaves. Tokens, keys and bodies never reach the log.
public final class DarajaClient: Sendable {
    public let configuration: DarajaConfiguration
    private let http: CurlClient
    private let tokens: TokenCache
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// `mpesa_request_duration_seconds{endpoint,outcome}`: every call's time, answered or not.
    let metrics: MetricCache

    public init(
        configuration: DarajaConfiguration, http: CurlClient, logger: Logger = Logger(label: "mpesa"), metrics: MetricCache = .discarding,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.configuration = configuration
        self.http = http
        self.logger = logger
        self.metrics = metrics
        self.now = now
        self.tokens = TokenCache(margin: configuration.tokenRefreshMargin, now: now)
    }

    // MARK: STK push

    /// What Daraja said to an STK push it accepted.
    public struct STKPushAccepted: Sendable, Hashable {
        public let merchantRequestID: String
        public let checkoutRequestID: String
    }

    /// Asks the customer's phone to approve paying `shillings` to our shortcode.
    public func stkPush(phone: String, shillings: Int, accountReference: String, description: String) async throws(DarajaError) -> STKPushAccepted {
        try Validate.msisdn(phone, field: "PhoneNumber")
        try Validate.amount(shillings, in: 1...250_000)
        try Validate.length(accountReference, field: "AccountReference", in: 1...12)
        try Validate.length(description, field: "TransactionDesc", in: 1...13)
        try Validate.callbackURL(self.configuration.stkCallbackURL, field: "CallBackURL")
        let timestamp = Self.timestamp(self.now())
        let body: [(String, JSONOut)] = [
            ("BusinessShortCode", .string(self.configuration.shortcode)),
            ("Password", .string(self.password(timestamp))),
            ("Timestamp", .string(timestamp)),
            ("TransactionType", .string(self.configuration.transactionType.commandID)),
            ("Amount", .integer(shillings)),
            ("PartyA", .string(phone)),
            ("PartyB", .string(self.configuration.partyB)),
            ("PhoneNumber", .string(phone)),
            ("CallBackURL", .string(self.configuration.stkCallbackURL)),
            ("AccountReference", .string(accountReference)),
            ("TransactionDesc", .string(description)),
        ]
        let reply = try await self.call("/mpesa/stkpush/v1/processrequest", body)
        guard reply["ResponseCode"]?.string == "0", let checkout = reply["CheckoutRequestID"]?.string, !checkout.isEmpty else {
            throw .api(status: 200, code: reply["ResponseCode"]?.string ?? "?", message: reply["ResponseDescription"]?.string ?? "not accepted")
        }
        return STKPushAccepted(merchantRequestID: reply["MerchantRequestID"]?.string ?? "", checkoutRequestID: checkout)
    }

    /// Where an STK push stands according to the query API.
    public enum STKStatus: Sendable, Hashable {
        /// "The transaction is being processed".
        case pending
        case paid
        case failed(code: Int, text: String)
    }

    /// The STK query. A callback-confirmed result must never be overwritten by this answer.
    public func stkQuery(checkoutRequestID: String) async throws(DarajaError) -> STKStatus {
        try Validate.length(checkoutRequestID, field: "CheckoutRequestID", in: 1...100)
        let timestamp = Self.timestamp(self.now())
        let body: [(String, JSONOut)] = [
            ("BusinessShortCode", .string(self.configuration.shortcode)),
            ("Password", .string(self.password(timestamp))),
            ("Timestamp", .string(timestamp)),
            ("CheckoutRequestID", .string(checkoutRequestID)),
        ]
        let reply: JSONValue
        do {
            reply = try await self.call("/mpesa/stkpushquery/v1/query", body)
        } catch where error.isBeingProcessed {
            return .pending
        }
        guard let code = reply["ResultCode"]?.integer else { throw .malformedResponse(status: 200) }
        if code == 0 { return .paid }
        return .failed(code: Int(code), text: reply["ResultDesc"]?.string ?? "")
    }

    // MARK: B2C

    public enum B2CCommand: String, Sendable, CaseIterable {
        case businessPayment = "BusinessPayment"
        case salaryPayment = "SalaryPayment"
        case promotionPayment = "PromotionPayment"
    }

    /// What Daraja's acknowledgement of an asynchronous request (B2C, Transaction Status) named:
    /// the pair its result must name again.
    public struct Acknowledgement: Sendable, Hashable {
        /// Daraja's own id for the request.
        public let conversationID: String
        /// The OriginatorConversationID as the acknowledgement echoed it (ours).
        public let originatorConversationID: String
    }

    /// Pays `shillings` to `phone`. `originatorConversationID` is the idempotency key: a retry
    /// must reuse it (Daraja refuses a duplicate), never replace it while the first is unknown.
    /// Returns the acknowledgement's ConversationID and OriginatorConversationID.
    public func b2c(
        originatorConversationID: String, phone: String, shillings: Int, remarks: String, occasion: String = "Withdrawal",
        command: B2CCommand = .businessPayment
    ) async throws(DarajaError) -> Acknowledgement {
        try Validate.length(originatorConversationID, field: "OriginatorConversationID", in: 1...100)
        try Validate.msisdn(phone, field: "PartyB")
        try Validate.amount(shillings, in: 10...250_000)
        try Validate.length(remarks, field: "Remarks", in: 2...100)
        try Validate.length(occasion, field: "Occasion", in: 0...100)
        try Validate.callbackURL(self.configuration.b2cResultURL, field: "ResultURL")
        try Validate.callbackURL(self.configuration.b2cTimeoutURL, field: "QueueTimeOutURL")
        let body: [(String, JSONOut)] = [
            ("OriginatorConversationID", .string(originatorConversationID)),
            ("InitiatorName", .string(self.configuration.initiatorName)),
            ("SecurityCredential", .string(self.configuration.securityCredential)),
            ("CommandID", .string(command.rawValue)),
            ("Amount", .string(String(shillings))),
            ("PartyA", .string(self.configuration.b2cShortcode)),
            ("PartyB", .string(phone)),
            ("Remarks", .string(remarks)),
            ("QueueTimeOutURL", .string(self.configuration.b2cTimeoutURL)),
            ("ResultURL", .string(self.configuration.b2cResultURL)),
            ("Occasion", .string(occasion)),
        ]
        let reply = try await self.call("/mpesa/b2c/v3/paymentrequest", body)
        return try Self.acknowledgement(reply)
    }

    /// What a Transaction Status query asks about.
    public enum StatusSubject: Sendable, Hashable {
        /// An earlier B2C payment, by our OriginatorConversationID (the payout's id), asked by the
        /// B2C initiator with the B2C shortcode as PartyA.
        case payout(originalConversationID: String)
        /// A payment to the paybill, by its M-Pesa receipt (the confirmation's TransID), asked by
        /// the paybill's initiator with the paybill as PartyA.
        case paybill(transID: String)
    }

    /// Asks Transaction Status about `subject` under `queryID`, our OriginatorConversationID for the
    /// query: a random id (``StatusQueryID``), never derived from anything an outsider sees. The
    /// answer comes later to the result URL as a `Result` naming `queryID` and the ConversationID
    /// of the acknowledgement returned here; only an answer that names both is the answer.
    public func transactionStatus(_ subject: StatusSubject, queryID: String) async throws(DarajaError) -> Acknowledgement {
        try Validate.length(queryID, field: "OriginatorConversationID", in: 1...100)
        try Validate.callbackURL(self.configuration.b2cResultURL, field: "ResultURL")
        try Validate.callbackURL(self.configuration.b2cTimeoutURL, field: "QueueTimeOutURL")
        let (initiator, credential, party, key, value, remarks): (String, String, String, String, String, String)
        switch subject {
        case .payout(let original):
            try Validate.length(original, field: "OriginalConversationID", in: 1...100)
            (initiator, credential) = (self.configuration.initiatorName, self.configuration.securityCredential)
            (party, key, value, remarks) = (self.configuration.b2cShortcode, "OriginalConversationID", original, "Withdrawal status")
        case .paybill(let transID):
            try Validate.length(transID, field: "TransactionID", in: 6...20)
            (initiator, credential) = self.configuration.paybillInitiator
            (party, key, value, remarks) = (self.configuration.paybillShortcode, "TransactionID", transID, "Paybill payment status")
        }
        let body: [(String, JSONOut)] = [
            ("OriginatorConversationID", .string(queryID)),
            ("Initiator", .string(initiator)),
            ("SecurityCredential", .string(credential)),
            ("CommandID", .string("TransactionStatusQuery")),
            (key, .string(value)),
            ("PartyA", .string(party)),
            ("IdentifierType", .string("4")),
            ("ResultURL", .string(self.configuration.b2cResultURL)),
            ("QueueTimeOutURL", .string(self.configuration.b2cTimeoutURL)),
            ("Remarks", .string(remarks)),
            ("Occasion", .string("Reconcile")),
        ]
        let reply = try await self.call("/mpesa/transactionstatus/v1/query", body)
        return try Self.acknowledgement(reply)
    }

    /// Asks Account Balance about the B2C shortcode: what its accounts hold, the utility account
    /// being the float payouts draw on. The answer comes later to ``DarajaConfiguration/balanceResultURL``
    /// naming the ConversationID and OriginatorConversationID acknowledged here (Account Balance
    /// takes no OriginatorConversationID of ours: Safaricom gives one).
    public func accountBalance() async throws(DarajaError) -> Acknowledgement {
        guard let resultURL = self.configuration.balanceResultURL, let timeoutURL = self.configuration.balanceTimeoutURL else {
            throw .invalidRequest("no Account Balance callback URL is configured")
        }
        try Validate.callbackURL(resultURL, field: "ResultURL")
        try Validate.callbackURL(timeoutURL, field: "QueueTimeOutURL")
        let body: [(String, JSONOut)] = [
            ("Initiator", .string(self.configuration.initiatorName)),
            ("SecurityCredential", .string(self.configuration.securityCredential)),
            ("CommandID", .string("AccountBalance")),
            ("PartyA", .string(self.configuration.b2cShortcode)),
            ("IdentifierType", .string("4")),
            ("Remarks", .string("Float check")),
            ("QueueTimeOutURL", .string(timeoutURL)),
            ("ResultURL", .string(resultURL)),
        ]
        return try Self.acknowledgement(try await self.call("/mpesa/accountbalance/v1/query", body))
    }

    /// The pair an accepting answer (`ResponseCode` "0") names; an answer without a ConversationID
    /// acknowledges nothing a result could be matched to.
    static func acknowledgement(_ reply: JSONValue) throws(DarajaError) -> Acknowledgement {
        guard reply["ResponseCode"]?.string == "0", let conversation = reply["ConversationID"]?.string, (1...128).contains(conversation.utf8.count)
        else {
            throw .api(status: 200, code: reply["ResponseCode"]?.string ?? "?", message: reply["ResponseDescription"]?.string ?? "not accepted")
        }
        return Acknowledgement(conversationID: conversation, originatorConversationID: reply["OriginatorConversationID"]?.string ?? "")
    }

    // MARK: Plumbing

    /// `base64(BusinessShortCode + Passkey + Timestamp)`.
    func password(_ timestamp: String) -> String {
        Data((self.configuration.shortcode + self.configuration.passkey + timestamp).utf8).base64EncodedString()
    }

    /// `yyyyMMddHHmmss` in Nairobi time (UTC+3 all year: Kenya keeps no daylight saving).
    public static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down)) + 3 * 3600
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d%02d%02d%02d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec)
        )
    }

    /// Posts a JSON body with the current token; on an invalid-token answer, refreshes once and
    /// retries once.
    func call(_ path: String, _ body: [(String, JSONOut)]) async throws(DarajaError) -> JSONValue {
        let bytes = JSONOut.object(body).encoded()
        let token = try await self.token()
        do {
            return try await self.post(path, bytes, token: token)
        } catch where error.isInvalidToken {
            self.logger.notice("Daraja refused the access token; refreshing once", metadata: ["path": .string(path)])
            await self.tokens.invalidate(token)
            return try await self.post(path, bytes, token: try await self.token())
        }
    }

    private func post(_ path: String, _ body: [UInt8], token: String) async throws(DarajaError) -> JSONValue {
        let request = CurlRequest(
            method: "POST", url: self.configuration.baseURL + path,
            headers: [("Content-Type", "application/json"), ("Accept", "application/json"), ("Authorization", "Bearer " + token)] + Self.traced,
            body: body, timeout: self.configuration.requestTimeout
        )
        let start = ContinuousClock.now
        var outcome = "error"
        defer { self.timed(path, outcome, since: start) }
        let response: CurlResponse
        do {
            response = try await self.http.execute(request)
        } catch let error as CurlError {
            throw .transport(error)
        } catch {
            throw .cancelled
        }
        let json = try Self.decode(response)
        outcome = "ok"
        return json
    }

    /// The `traceparent` of a call made inside a traced request (``HopTrace``): the hop or callback
    /// that caused it, in Daraja's logs as in ours.
    static var traced: [(name: String, value: String)] {
        HopTrace.outbound().map { [("traceparent", $0)] } ?? []
    }

    /// Records a call's time under its endpoint's short name.
    private func timed(_ path: String, _ outcome: String, since start: ContinuousClock.Instant) {
        self.metrics.timer("mpesa_request_duration_seconds", [("endpoint", Self.endpoint(path)), ("outcome", outcome)])
            .record(duration: ContinuousClock.now - start)
    }

    /// A Daraja path's name in metrics: a fixed set, whatever the path.
    static func endpoint(_ path: String) -> String {
        switch path {
        case "/oauth/v1/generate": "oauth"
        case "/mpesa/stkpush/v1/processrequest": "stk_push"
        case "/mpesa/stkpushquery/v1/query": "stk_query"
        case "/mpesa/b2c/v3/paymentrequest": "b2c"
        case "/mpesa/transactionstatus/v1/query": "transaction_status"
        case "/mpesa/accountbalance/v1/query": "account_balance"
        case "/mpesa/c2b/v2/registerurl": "register_c2b"
        default: "other"
        }
    }

    static func decode(_ response: CurlResponse) throws(DarajaError) -> JSONValue {
        guard let json = JSONValue.parse(response.body), case .object = json else { throw .malformedResponse(status: response.status) }
        if let code = json["errorCode"]?.string {
            throw .api(status: response.status, code: code, message: json["errorMessage"]?.string ?? "")
        }
        guard (200..<300).contains(response.status) else { throw .malformedResponse(status: response.status) }
        return json
    }

    /// The cached token, or a fresh one fetched by exactly one caller.
    func token() async throws(DarajaError) -> String {
        do {
            return try await self.tokens.current { try await self.fetchToken() }
        } catch let error as DarajaError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    private func fetchToken() async throws -> (String, Duration) {
        let basic = Data((self.configuration.consumerKey + ":" + self.configuration.consumerSecret).utf8).base64EncodedString()
        let request = CurlRequest(
            method: "GET", url: self.configuration.baseURL + "/oauth/v1/generate?grant_type=client_credentials",
            headers: [("Authorization", "Basic " + basic), ("Accept", "application/json")] + Self.traced, timeout: self.configuration.requestTimeout
        )
        let start = ContinuousClock.now
        var outcome = "error"
        defer { self.timed("/oauth/v1/generate", outcome, since: start) }
        let response: CurlResponse
        do {
            response = try await self.http.execute(request)
        } catch let error as CurlError {
            throw DarajaError.transport(error)
        }
        let json = try Self.decode(response)
        guard let token = json["access_token"]?.string, !token.isEmpty, let lifetime = json["expires_in"]?.integer, lifetime > 0 else {
            throw DarajaError.malformedResponse(status: response.status)
        }
        outcome = "ok"
        self.logger.debug("Daraja access token refreshed", metadata: ["expires_in": .stringConvertible(lifetime)])
        return (token, .seconds(lifetime))
    }
}
