import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import HummingbirdTesting
import Logging
import MPesa
import MPesaBook
@testable import MPesaGateway
import Menus
@testable import SMSChannel
import TestSupport
import Testing
@testable import USSDChannel
import USSDGateway
import Wallet

/// Deposits and withdrawals end to end: a live gateway on real Redis and Postgres, Daraja played
/// by the strict fake, and Safaricom's callbacks posted the way Safaricom posts them.
struct MPesaRig {
    let fake: FakeDaraja
    let harness: USSDHarness
    let http = CurlClient()

    static func make(_ adjust: (inout GatewayConfig) -> Void = { _ in }) async throws -> MPesaRig {
        let fake = try await FakeDaraja.start()
        let harness = try await USSDHarness.make { config in
            config.publicBaseURL = "http://127.0.0.1:9"
            config.mpesa.baseURL = fake.baseURL
            config.mpesa.consumerKey = FakeDaraja.key
            config.mpesa.consumerSecret = FakeDaraja.secret
            config.mpesa.shortcode = FakeDaraja.shortcode
            config.mpesa.passkey = FakeDaraja.passkey
            config.mpesa.b2cShortcode = FakeDaraja.b2cShortcode
            config.mpesa.initiatorName = "testapi"
            config.mpesa.securityCredential = "c2VjcmV0LWNyZWRlbnRpYWw="
            config.mpesa.c2bInitiatorName = FakeDaraja.c2bInitiator
            config.mpesa.c2bSecurityCredential = FakeDaraja.c2bCredential
            config.mpesa.stkDelay = .milliseconds(50)
            config.mpesa.reconcileInterval = .seconds(3600)
            // The fake knows no Account Balance: the float is the sandbox's (MonitoringTests).
            config.mpesa.floatCheckInterval = nil
            adjust(&config)
        }
        return MPesaRig(fake: fake, harness: harness)
    }

    /// Another replica's M-Pesa service on the same database: what `ussd-gateway mpesa reconcile`
    /// runs. Its clock is `ahead` of the real one (time passed in, never slept for). It records to the
    /// metrics the harness's gateway serves at `/metrics`, as a replica in the same process would.
    func replica(ahead: Duration = .zero) -> MPesaService {
        let configuration = self.harness.config.mpesa.daraja(publicBaseURL: self.harness.config.publicBaseURL, callbackToken: self.harness.config.callbackToken)!
        let seconds = Double(ahead.components.seconds)
        return MPesaService(
            daraja: DarajaClient(configuration: configuration, http: self.http), book: self.harness.book, stkDelay: .zero,
            paybill: self.harness.config.mpesa.paybillRules, now: { Date().addingTimeInterval(seconds) }, metrics: GatewayMetrics.serving,
            logger: self.harness.capture.logger
        )
    }

    /// Points the fake Daraja's callbacks (status answers, results) at the live gateway `client` serves.
    func live(_ client: any TestClientProtocol) throws {
        let port = try #require(client.port)
        self.fake.state.withLock { $0.gateway = "http://127.0.0.1:\(port)" }
    }

    /// Waits (up to 30 seconds, a bound for a broken run) until the gateway has kept the acknowledgement of each Transaction
    /// Status query the fake accepted, then has the fake post Safaricom's answers (each not yet
    /// answered, or with `again` all of them once more) to the gateway's result route.
    @discardableResult
    func answerStatusQueries(again: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        // The fake records a request before it records the query it answers: a query whose request
        // was seen is waited for, or it would be left unanswered.
        _ = try await eventually(within: .seconds(30)) {
            self.fake.statusQueries.count >= self.fake.requests("/mpesa/transactionstatus/v1/query").count
        }
        for query in self.fake.statusQueries {
            let kept = try await eventually(within: .seconds(30)) {
                try await self.harness.postgres.query(
                    "SELECT 1 FROM mpesa_status_queries WHERE id = \(query.queryID) AND conversation_id = \(query.conversationID)"
                ).first != nil
            }
            #expect(kept, "the gateway never kept the acknowledgement of query \(query.queryID)", sourceLocation: sourceLocation)
        }
        return try await self.fake.deliverStatusAnswers(again: again, http: self.http)
    }

    /// The review rows kept about `reference`, as `kind reason`.
    func reviews(_ reference: String) async throws -> [String] {
        try await self.harness.postgres.query("SELECT kind || ' ' || reason FROM mpesa_review WHERE reference = \(reference) ORDER BY id").map {
            try $0.decode(String.self, column: 0)
        }
    }

    /// Stops everything, after checking that no Daraja secret or token reached the logs.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) async {
        for record in self.harness.capture.all {
            let line = record.message + " " + record.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            for secret in [FakeDaraja.secret, FakeDaraja.passkey, "c2VjcmV0LWNyZWRlbnRpYWw=", FakeDaraja.c2bCredential, "token-"] {
                #expect(!line.contains(secret), "a Daraja secret reached the logs: \(record.message)", sourceLocation: sourceLocation)
            }
        }
        await self.http.shutdown()
        await self.fake.stop()
        await self.harness.finish()
    }

    /// Waits (up to 30 seconds, a bound for a broken run) for the `count`-th request to a Daraja path.
    func request(_ path: String, count: Int = 1) async throws -> FakeDaraja.Request {
        guard try await eventually(within: .seconds(30), { self.fake.requests(path).count >= count }) else { throw CancellationError() }
        return self.fake.requests(path)[count - 1]
    }

    /// Waits (up to 30 seconds, a bound for a broken run) until the gateway has logged `message` `count` times: a call
    /// that got no answer, say, is over only when its own timeout has fired, which a loaded
    /// machine may delay.
    func logged(_ message: String, count: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        if try await eventually(within: .seconds(30), { self.harness.capture.all.filter({ $0.message == message }).count >= count }) { return }
        Issue.record("never logged \(count) × \(message)", sourceLocation: sourceLocation)
    }

    /// Waits for the deposit of `msisdn` to get its CheckoutRequestID.
    func checkout(_ msisdn: MSISDN) async throws -> String {
        var checkout: String?
        _ = try await eventually(within: .seconds(30)) {
            checkout = try await self.harness.postgres.query(
                "SELECT checkout_request_id FROM deposits WHERE customer_id = (SELECT id FROM customers WHERE msisdn = \(msisdn.value)) AND checkout_request_id IS NOT NULL AND idempotency_key NOT LIKE 'fund-%' ORDER BY id DESC LIMIT 1"
            ).single()?.decode(String.self, column: 0)
            return checkout != nil
        }
        guard let checkout else { throw CancellationError() }
        return checkout
    }

    func balance(_ msisdn: MSISDN) async throws -> Int64 { try await self.harness.wallet.balances(msisdn).available.cents }

    func outbox(_ msisdn: MSISDN, _ template: String) async throws -> Int {
        try await self.harness.postgres.query("SELECT count(*) FROM outbox WHERE recipient = \(msisdn.value) AND template = \(template)").single()!
            .decode(Int.self, column: 0)
    }

    func payoutStatus(_ msisdn: MSISDN) async throws -> (id: String, status: String, held: Int64) {
        let row = try await self.harness.postgres.query(
            """
            SELECT p.id, p.status, a.held FROM payouts p JOIN accounts a ON a.customer_id = p.customer_id AND a.kind = 'main'
            WHERE p.customer_id = (SELECT id FROM customers WHERE msisdn = \(msisdn.value)) ORDER BY p.created_at DESC LIMIT 1
            """
        ).single()!
        return try row.decode((String, String, Int64).self)
    }

    /// Waits (up to 30 seconds, a bound for a broken run) until the gateway has kept the acknowledgement of payout `id`.
    func acknowledged(_ id: String) async throws {
        let kept = try await eventually(within: .seconds(30)) {
            try await self.harness.postgres.query("SELECT 1 FROM payouts WHERE id = \(id) AND conversation_id IS NOT NULL").first != nil
        }
        if !kept { throw CancellationError() }
    }

    /// Waits (up to 30 seconds, a bound for a broken run) until the gateway has kept the acknowledgement of status query `id`.
    func acknowledgedQuery(_ id: String) async throws {
        let kept = try await eventually(within: .seconds(30)) {
            try await self.harness.postgres.query("SELECT 1 FROM mpesa_status_queries WHERE id = \(id) AND conversation_id IS NOT NULL").first != nil
        }
        if !kept { throw CancellationError() }
    }

    /// Makes every pending deposit and open payout due for the reconciler now.
    func makeDue() async throws {
        try await self.harness.postgres.query("UPDATE deposits SET next_check_at = now() - interval '1 second' WHERE status = 'pending'")
        try await self.harness.postgres.query("UPDATE payouts SET next_check_at = now() - interval '1 second' WHERE status IN ('reserved', 'sent', 'unknown')")
    }

    static func stkSuccess(_ checkout: String, shillings: Int, receipt: String, phone: String) -> String {
        #"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"\#(checkout)","ResultCode":0,"ResultDesc":"The service request is processed successfully.","CallbackMetadata":{"Item":[{"Name":"Amount","Value":\#(shillings).00},{"Name":"MpesaReceiptNumber","Value":"\#(receipt)"},{"Name":"Balance"},{"Name":"TransactionDate","Value":20191219102115},{"Name":"PhoneNumber","Value":\#(phone)}]}}}}"#
    }

    static func stkFailure(_ checkout: String, code: Int, text: String) -> String {
        #"{"Body":{"stkCallback":{"MerchantRequestID":"29115-1","CheckoutRequestID":"\#(checkout)","ResultCode":\#(code),"ResultDesc":"\#(text)"}}}"#
    }

    /// A `Result` body as a test writes it: any ids (a forger's, or ones a test set up), unlike
    /// ``FakeDaraja/b2cResult(_:code:conversation:)``, which names what the fake acknowledged.
    static func b2cResult(_ originator: String, code: Int, receipt: String? = nil, status: String? = nil, conversation: String = "AG_20240706_1") -> String {
        var parameters: [String] = []
        if let receipt { parameters += [#"{"Key":"TransactionAmount","Value":100}"#, #"{"Key":"TransactionReceipt","Value":"\#(receipt)"}"#, #"{"Key":"ReceiptNo","Value":"\#(receipt)"}"#] }
        if let status { parameters.append(#"{"Key":"TransactionStatus","Value":"\#(status)"}"#) }
        let list = parameters.isEmpty ? "" : #","ResultParameters":{"ResultParameter":[\#(parameters.joined(separator: ","))]}"#
        return #"{"Result":{"ResultType":0,"ResultCode":\#(code),"ResultDesc":"\#(code == 0 ? "The service request is processed successfully." : "The initiator information is invalid.")","OriginatorConversationID":"\#(originator)","ConversationID":"\#(conversation)","TransactionID":"\#(receipt ?? "SG600000000")"\#(list)}}"#
    }
}

extension Phone {
    /// Dials and walks main menu -> Deposit (2) or Withdraw (3) -> amount -> confirm -> PIN; the last reply.
    mutating func mobileMoney(_ option: String, shillings: Int, pin: String) async throws -> String {
        _ = try await self.dial()
        _ = try await self.type(option)
        _ = try await self.type(String(shillings))
        _ = try await self.type("1")
        return try await self.type(pin)
    }

    mutating func deposit(_ shillings: Int, pin: String) async throws -> String { try await self.mobileMoney("2", shillings: shillings, pin: pin) }
    mutating func withdraw(_ shillings: Int, pin: String) async throws -> String { try await self.mobileMoney("3", shillings: shillings, pin: pin) }
}

/// Posts a JSON callback the way Safaricom does; expects 200 with the documented acknowledgement.
func callback(_ client: any TestClientProtocol, _ path: String, _ json: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let response = try await client.execute(uri: path, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    #expect(response.status == .ok, sourceLocation: sourceLocation)
    #expect(String(buffer: response.body) == #"{"ResultCode":0,"ResultDesc":"Accepted"}"#, sourceLocation: sourceLocation)
}
