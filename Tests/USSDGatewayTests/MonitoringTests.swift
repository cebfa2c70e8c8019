import Basics
import Curl
import Foundation
@testable import GatewayHTTP
@testable import GatewayTelemetry
@testable import GatewayTestSupport
import Metrics
import MetricsTestKit
import MPesa
import MPesaBook
@testable import MPesaGateway
import Sandbox
import Testing
import TestSupport
@testable import USSDGateway
import Wallet

/// What an operator watches (issue 32): the gauges that move as the sandbox's journeys move
/// money, `/metrics` as `promtool check metrics` reads it, the names the shipped rules and
/// dashboard use, and one hop's trace carried into its Daraja call.
@Suite struct MonitoringTests {
    /// The sandbox tests' development gateway (both providers simulated), its gauges refreshed every
    /// second and the float asked for every two seconds.
    static func harness(smsPoll: Duration = .milliseconds(100)) async throws -> USSDHarness {
        try await SandboxTests.harness { config in
            config.mpesa.floatCheckInterval = .seconds(2)
            config.sms.pollInterval = smsPoll
            config.operationsGaugesInterval = .seconds(1)
            config.dependencyProbeInterval = .seconds(1)
        }
    }

    static func gauge(_ recorded: TestMetrics, _ label: String, _ dimensions: [(String, String)] = []) -> Double? {
        (try? recorded.expectGauge(label, dimensions))?.lastValue
    }

    static func counted(_ recorded: TestMetrics, _ label: String, _ dimensions: [(String, String)]) -> Int64 {
        recorded.counters(label: label, dimensions: dimensions).map(\.totalValue).reduce(0, +)
    }

    @Test func theFloatOutboxReviewAndPayoutGaugesMoveAsTheSandboxsJourneysMoveMoney() async throws {
        // Receipts wait in the outbox for up to eight seconds: long enough for the gauge to see them.
        let harness = try await Self.harness(smsPoll: .seconds(8))
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Amina", pin: TypedPINs.achieng)
        let recorded = TestMetrics()
        let http = CurlClient()
        try await harness.serve(metrics: MetricCache(factory: recorded)) { base in
            // Both dependencies answer; the sandbox's float is KES 1,000,000 until something is paid out.
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "gateway_dependency_up", [("dependency", "redis")]) == 1 })
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "gateway_dependency_up", [("dependency", "postgres")]) == 1 })
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "mpesa_float_balance", [("currency", "KES")]) == 1_000_000 }, "the first float reading")
            let reported = try #require(Self.gauge(recorded, "mpesa_float_reported_timestamp_seconds"))
            #expect(abs(reported - Date().timeIntervalSince1970) < 120, "Daraja's BOCompletedTime, read as Nairobi time")
            #expect(Self.gauge(recorded, "mpesa_payouts_in_flight") == 0)
            #expect(Self.gauge(recorded, "sms_outbox_backlog") == 0)

            var phone = SimulatedPhone(url: base + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http)!
            // A deposit of 500: credited, its receipt waits in the outbox, then is sent.
            #expect(try await SandboxTests.mobileMoney(&phone, "2", shillings: 500, pin: TypedPINs.achieng).hasPrefix("Check your phone"))
            #expect(try await SandboxTests.eventually { try await SandboxTests.available(harness, msisdn) == 500 })
            #expect(try await SandboxTests.eventually { (Self.gauge(recorded, "sms_outbox_backlog") ?? 0) >= 1 }, "the receipt is counted while it waits")
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "sms_outbox_backlog") == 0 }, "and no longer once sent")
            #expect(Self.counted(recorded, "wallet_money_total", [("direction", "in"), ("currency", "KES")]) == 500)
            #expect(Self.counted(recorded, "wallet_journeys_total", [("kind", "deposit"), ("outcome", "completed")]) == 1)

            // A withdrawal of 107 whose result never comes (the sandbox's rule for amounts ending in
            // 7): in flight until Transaction Status settles it; then paid out of the float.
            _ = try await SandboxTests.mobileMoney(&phone, "3", shillings: 107, pin: TypedPINs.achieng)
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "mpesa_payouts_in_flight") == 1 }, "the payout is in flight")
            #expect(Self.gauge(recorded, "mpesa_payouts_in_flight_amount", [("currency", "KES")]) == 107)
            #expect(try await SandboxTests.eventually { (Self.gauge(recorded, "mpesa_payouts_oldest_age_seconds") ?? 0) > 0 })
            #expect(try await SandboxTests.payoutsOnceSettled(harness, ["paid"]) == ["107 paid"])
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "mpesa_payouts_in_flight") == 0 }, "settled")
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "mpesa_float_balance", [("currency", "KES")]) == 1_000_000 - 107 }, "the float fell by the payout")
            #expect(Self.counted(recorded, "wallet_money_total", [("direction", "out"), ("currency", "KES")]) == 107)
            #expect(Self.counted(recorded, "wallet_journeys_total", [("kind", "withdraw"), ("outcome", "completed")]) == 1)
            // A withdrawal the wallet refuses (more than the balance) is the customer's, not a failure.
            _ = try await SandboxTests.mobileMoney(&phone, "3", shillings: 100_000, pin: TypedPINs.achieng)
            #expect(Self.counted(recorded, "wallet_journeys_total", [("kind", "withdraw"), ("outcome", "refused")]) == 1)
            #expect(Self.counted(recorded, "wallet_journeys_total", [("kind", "withdraw"), ("outcome", "failed")]) == 0)

            // A report kept for a person: the review gauges by kind.
            #expect(Self.gauge(recorded, "mpesa_review_open", [("kind", "stk")]) == 0)
            try await harness.book.keepForReview(kind: "stk", reference: "ws_CO_monitoring", reason: "a test's report", body: #"{"Body":{}}"#)
            #expect(try await SandboxTests.eventually { Self.gauge(recorded, "mpesa_review_open", [("kind", "stk")]) == 1 })
            #expect(try await SandboxTests.eventually { (Self.gauge(recorded, "mpesa_review_oldest_age_seconds", [("kind", "stk")]) ?? 0) > 0 }, "its age grows")
            // Every Daraja call was timed by endpoint.
            for endpoint in ["oauth", "stk_push", "b2c", "account_balance"] {
                #expect((try? recorded.expectTimer("mpesa_request_duration_seconds", [("endpoint", endpoint), ("outcome", "ok")]))?.values.isEmpty == false, "\(endpoint)")
            }
            #expect((try? recorded.expectTimer("sms_send_duration_seconds", [("outcome", "accepted")]))?.values.isEmpty == false)
        }
        try await harness.audit()
        await http.shutdown()
        await harness.finish()
    }

    /// A float answer counts once and only when it names a query Daraja acknowledged; a forged one
    /// (the token leaked) or a repeat changes nothing.
    @Test func aFloatAnswerCountsOnceAndOnlyForAnAcknowledgedQuery() async throws {
        let harness = try await USSDHarness.make()
        let book = harness.book
        let accounts = [MPesaBook.FloatAccount(account: "Utility Account", currency: "KES", available: .shillings(5_000))]
        let at = Date()
        #expect(try await book.recordBalanceAnswer(conversationID: "AG_x", originator: "o", resultCode: "0", resultText: "ok", accounts: accounts, reportedAt: at) == .unknown)
        let query = try #require(try await book.claimBalanceQuery(interval: .seconds(900), now: at))
        #expect(try await book.claimBalanceQuery(interval: .seconds(900), now: at) == nil, "one query per interval for the deployment")
        try await book.acknowledgeBalanceQuery(id: query, conversationID: "AG_1", originator: "safaricom-1")
        #expect(try await book.recordBalanceAnswer(conversationID: "AG_1", originator: "forged", resultCode: "0", resultText: "ok", accounts: accounts, reportedAt: at) == .unknown)
        #expect(try await book.latestFloat() == nil)
        #expect(try await book.recordBalanceAnswer(conversationID: "AG_1", originator: "safaricom-1", resultCode: "0", resultText: "ok", accounts: accounts, reportedAt: at) == .kept(accounts: 1))
        let more = [MPesaBook.FloatAccount(account: "Utility Account", currency: "KES", available: .shillings(1))]
        #expect(try await book.recordBalanceAnswer(conversationID: "AG_1", originator: "safaricom-1", resultCode: "0", resultText: "ok", accounts: more, reportedAt: at) == .repeated)
        #expect(try await book.latestFloat()?.available == .shillings(5_000))
        await harness.finish()
    }

    @Test(arguments: [
        ("Working Account|KES|46713.00|46713.00|0.00|0.00&Utility Account|KES|8959269.6|8959269.60|0.00|0.00", [4_671_300, 895_926_960] as [Int64]),
        ("Utility Account|KES|-12.05|0.00", [-1205]),
    ])
    func accountBalanceIsReadAccountByAccount(_ text: String, _ cents: [Int64]) throws {
        #expect(try AccountBalance.accounts(.string(text)).map(\.cents) == cents)
    }

    @Test(arguments: [
        "", "Utility Account", "Utility Account|kes|1.00", "Utility Account|KES|1.001", "Utility Account|KES|1e9", "Utility\nAccount|KES|1.00", "|KES|1.00",
        "Utility Account|KES|1.00&Utility Account|KES|2.00",
    ])
    func malformedAccountBalancesAreRefused(_ text: String) {
        #expect(throws: DarajaCallbackMalformed.self) { _ = try AccountBalance.accounts(.string(text)) }
    }

    /// BOCompletedTime: Nairobi time, read back as written or not at all (no rolled-over month 13).
    @Test func completedTimeIsNairobiTimeAndNothingImpossible() throws {
        let time = try #require(AccountBalance.completedTime(.integer(20_261_207_120_000)))
        #expect(time.timeIntervalSince1970 == 1_796_634_000, "12:00 in Nairobi is 09:00 UTC")
        #expect(AccountBalance.completedTime(.string("20261307120000")) == nil)
        #expect(AccountBalance.completedTime(.string("20260230120000")) == nil)
        #expect(AccountBalance.completedTime(.string("2026120712000")) == nil)
    }

    /// Daraja's published sample of an Account Balance result (kept as a fuzzing seed too), read
    /// whole: five accounts, the utility account the float.
    @Test func darajasSampleAnswerReadsAsFiveAccounts() throws {
        let sample = try String(contentsOfFile: "Fuzz/Corpus/daraja-callbacks/account-balance", encoding: .utf8)
        let result = try B2CResult(json: Array(sample.utf8))
        let accounts = try AccountBalance.accounts(result.parameters["AccountBalance"])
        #expect(accounts.map(\.name) == ["Working Account", "Float Account", "Utility Account", "Charges Paid Account", "Organization Settlement Account"])
        #expect(accounts.first { $0.name == "Utility Account" }?.cents == 22_803_700)
        #expect(accounts.first { $0.name == "Charges Paid Account" }?.cents == -154_000)
        #expect(AccountBalance.completedTime(result.parameters["BOCompletedTime"]) != nil)
    }
}
