import AfricasTalking
import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import HummingbirdTesting
import Logging
@testable import MPesaGateway
import Menus
import Postgres
@testable import SMSChannel
import TestSupport
import Testing
@testable import USSDChannel
import USSDGateway
import Wallet

/// The SMS channel end to end: commands posted the way Africa's Talking posts them, replies and
/// receipts leaving through the outbox sender to the fake messaging API.
struct SMSRig {
    let fake: FakeAfricasTalking
    let harness: USSDHarness

    static func make(_ adjust: (inout GatewayConfig) -> Void = { _ in }) async throws -> SMSRig {
        let fake = try await FakeAfricasTalking.start()
        let harness = try await USSDHarness.make { config in
            config.sms.username = FakeAfricasTalking.username
            config.sms.apiKey = FakeAfricasTalking.apiKey
            config.sms.baseURL = fake.baseURL
            config.sms.retryBase = .milliseconds(20)
            config.sms.pollInterval = .milliseconds(20)
            config.sms.ratePerSecond = 0
            config.sms.requestTimeout = .milliseconds(500)
            adjust(&config)
        }
        return SMSRig(fake: fake, harness: harness)
    }

    func finish(sourceLocation: SourceLocation = #_sourceLocation) async {
        #expect(self.fake.violations.isEmpty, "\(self.fake.violations)", sourceLocation: sourceLocation)
        for record in self.harness.capture.all {
            let line = record.message + " " + record.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            #expect(!line.contains(FakeAfricasTalking.apiKey), "the API key reached the logs", sourceLocation: sourceLocation)
        }
        await self.fake.stop()
        await self.harness.finish()
    }

    /// A sender of our own on the harness's database, as another replica would run it.
    func sender(maxAttempts: Int = 8, http: CurlClient) -> OutboxSender {
        var settings = self.harness.config.sms
        settings.maxAttempts = maxAttempts
        return OutboxSender(
            postgres: self.harness.postgres, personalData: self.harness.wallet.personalData, client: AfricasTalkingSMS(configuration: settings.configuration!, http: http), graph: self.harness.graph,
            settings: settings, metrics: GatewayMetrics.serving, logger: self.harness.capture.logger
        )
    }

    /// Waits (up to 30 seconds, a bound for a broken run) until the texts sent to `msisdn` satisfy `done`; returns them.
    @discardableResult
    func texts(_ msisdn: MSISDN, sourceLocation: SourceLocation = #_sourceLocation, until done: ([String]) -> Bool) async throws -> [String] {
        if try await eventually(within: .seconds(30), { done(self.fake.texts(to: msisdn.value)) }) { return self.fake.texts(to: msisdn.value) }
        let texts = self.fake.texts(to: msisdn.value)
        Issue.record("\(msisdn.value) never got what was expected: \(texts)", sourceLocation: sourceLocation)
        return texts
    }

    func status(_ id: Int64) async throws -> (status: String, attempts: Int32, error: String?) {
        try await self.harness.postgres.query("SELECT status, attempts, last_error FROM outbox WHERE id = \(id)").single()!.decode((String, Int32, String?).self)
    }

    /// Waits until outbox row `id` leaves `pending`.
    func settled(_ id: Int64) async throws -> (status: String, attempts: Int32, error: String?) {
        _ = try await eventually(within: .seconds(30)) { try await self.status(id).status != "pending" }
        return try await self.status(id)
    }
}

/// Posts one inbound SMS as Africa's Talking does.
@discardableResult
func sms(_ client: any TestClientProtocol, from msisdn: MSISDN, _ text: String, id: String = "ATXid_in_" + UUID().uuidString, path: String = "/sms/africastalking/inbound") async throws -> TestResponse {
    let form = Phone.form(["from": "+" + msisdn.value, "to": "20880", "text": text, "date": "2026-11-22 10:00:00", "id": id, "linkId": "", "networkCode": "63902"])
    let response = try await client.execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: form))
    #expect(response.status == .ok)
    return response
}
