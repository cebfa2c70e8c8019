import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import GatewayTelemetry
import Hummingbird
import MetricsTestKit
@testable import MoMo
import Synchronization
import Testing

/// The MoMo client against the strict fake MoMo: tokens, request to pay, transfer, statuses, the
/// typed errors and what is unknown, and nothing secret in any description.
@Suite struct MoMoClientTests {
    static let secrets = [
        FakeMoMo.collection.subscriptionKey, FakeMoMo.collection.apiKey, FakeMoMo.disbursement.subscriptionKey, FakeMoMo.disbursement.apiKey,
    ]
    static let payer = "233241234567"

    func withClient(
        callbackURL: String? = nil, _ adjust: (inout MoMoConfiguration) -> Void = { _ in }, _ body: (MoMoClient, FakeMoMo) async throws -> Void
    ) async throws {
        let fake = try await FakeMoMo.start()
        let http = CurlClient()
        var configuration = fake.configuration(callbackURL: callbackURL)
        adjust(&configuration)
        let client = MoMoClient(configuration: configuration, http: http)
        do {
            try await body(client, fake)
        } catch {
            await http.shutdown()
            await fake.stop()
            throw error
        }
        #expect(fake.violations.isEmpty, "\(fake.violations)")
        await http.shutdown()
        await fake.stop()
    }

    /// The error a call threw, or nil.
    func error(_ call: () async throws(MoMoError) -> Void) async -> MoMoError? {
        do {
            try await call()
            return nil
        } catch {
            Self.expectNoSecret(error.description)
            return error
        }
    }

    static func expectNoSecret(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in Self.secrets { #expect(!text.contains(secret), "a secret in \(text)", sourceLocation: sourceLocation) }
        #expect(!text.contains("momo-collection-") && !text.contains("momo-disbursement-"), "a token in \(text)", sourceLocation: sourceLocation)
    }

    @Test func aRequestToPayIsAcceptedAndItsStatusReadBackWithOneToken() async throws {
        try await self.withClient(callbackURL: "https://gw.example.com/momo/callback/s3cr3t-t0ken") { client, fake in
            let reference = MoMoReference(idempotencyKey: "deposit-1")
            try await client.requestToPay(reference: reference, amount: "12.50", externalID: "deposit-1", payer: Self.payer, payerMessage: "Wallet deposit", payeeNote: "USSD")
            let status = try await client.requestToPayStatus(reference)
            #expect(status.status == .successful && status.amount == "12.50" && status.currency == "EUR" && status.externalId == "deposit-1")
            #expect(status.party == .init(role: .payer, partyIdType: "MSISDN", partyId: Self.payer) && status.financialTransactionId != nil)
            _ = try await client.requestToPayStatus(reference)
            #expect(fake.tokensIssued(.collection) == 1 && fake.tokensIssued(.disbursement) == 0, "one token serves every call until it nears expiry")
            let sent = try #require(fake.requests("POST", "/collection/v1_0/requesttopay").first)
            #expect(sent.headers["x-reference-id"] == reference.uuidString)
            #expect(sent.headers["x-callback-url"] == "https://gw.example.com/momo/callback/s3cr3t-t0ken/" + reference.uuidString)
            #expect(sent.json?["payer"]?["partyId"] == .string(Self.payer) && sent.json?["amount"] == .string("12.50"))
            #expect(fake.paidCount(reference.uuidString) == 1)
            #expect(!client.configuration.description.contains("s3cr3t-t0ken"), "the callback token stays out of the description")
            Self.expectNoSecret(client.configuration.description)
        }
    }

    @Test func aTransferIsPaidOnceAndItsStatusAndTheFloatAreRead() async throws {
        try await self.withClient { client, fake in
            let reference = MoMoReference(idempotencyKey: "payout-1")
            try await client.transfer(reference: reference, amount: "300", externalID: "payout-1", payee: "233241234567", payerMessage: "Withdrawal", payeeNote: "USSD")
            let status = try await client.transferStatus(reference)
            #expect(status.status == .successful && status.party.role == .payee && status.party.partyId == "233241234567")
            #expect(fake.paidCount(reference.uuidString) == 1)
            let balance = try await client.disbursementBalance()
            #expect(balance.availableBalance == "15000.50" && balance.currency == "EUR")
            #expect(fake.tokensIssued(.disbursement) == 1 && fake.tokensIssued(.collection) == 0, "each product its own token")
            #expect(fake.requests("POST", "/disbursement/v1_0/transfer").first?.headers["x-callback-url"] == nil, "no callback configured, none sent")
        }
    }

    @Test func theSameReferenceTwiceIsADuplicateAndPaysOnce() async throws {
        try await self.withClient { client, fake in
            let reference = MoMoReference(idempotencyKey: "payout-2")
            try await client.transfer(reference: reference, amount: "10", externalID: "payout-2", payee: Self.payer, payerMessage: "", payeeNote: "")
            let error = await self.error { () async throws(MoMoError) in
                try await client.transfer(reference: reference, amount: "10", externalID: "payout-2", payee: Self.payer, payerMessage: "", payeeNote: "")
            }
            #expect(error == .duplicateReference && error?.outcomeUnknown == false)
            #expect(fake.paidCount(reference.uuidString) == 1)
        }
    }

    @Test func refusalsCarryMoMosCodeAndFailuresTheirReason() async throws {
        try await self.withClient { client, fake in
            fake.state.withLock {
                $0.refusals["46733123451"] = (400, "PAYER_NOT_FOUND", "Payer not found")
                $0.refusals["46733123452"] = (400, "NOT_ENOUGH_FUNDS", "Not enough funds")
                $0.outcomes["46733123453"] = .failed(reason: "APPROVAL_REJECTED")
            }
            let notFound = await self.error { () async throws(MoMoError) in
                try await client.requestToPay(reference: MoMoReference(idempotencyKey: "d-2"), amount: "5", externalID: "d-2", payer: "46733123451", payerMessage: "", payeeNote: "")
            }
            #expect(notFound == .refused(status: 400, code: "PAYER_NOT_FOUND", message: "Payer not found") && notFound?.outcomeUnknown == false)
            let funds = await self.error { () async throws(MoMoError) in
                try await client.transfer(reference: MoMoReference(idempotencyKey: "p-3"), amount: "5", externalID: "p-3", payee: "46733123452", payerMessage: "", payeeNote: "")
            }
            #expect(funds == .refused(status: 400, code: "NOT_ENOUGH_FUNDS", message: "Not enough funds"))
            let rejected = MoMoReference(idempotencyKey: "d-3")
            try await client.requestToPay(reference: rejected, amount: "5", externalID: "d-3", payer: "46733123453", payerMessage: "", payeeNote: "")
            #expect(try await client.requestToPayStatus(rejected).reason == .init(code: "APPROVAL_REJECTED", message: nil))
            fake.state.withLock { $0.reasonAsObject = true }
            let failed = try await client.requestToPayStatus(rejected)
            #expect(failed.status == .failed && failed.reason?.code == "APPROVAL_REJECTED" && failed.reason?.message == "The transaction failed.")
            #expect(fake.paidCount(rejected.uuidString) == 0)
        }
    }

    @Test func anUnansweredCreateIsUnknownAndItsRetryIsADuplicatePaidOnce() async throws {
        try await self.withClient({ $0.requestTimeout = .seconds(1) }) { client, fake in
            fake.state.withLock { $0.dropNextCreateAnswer = true }
            let reference = MoMoReference(idempotencyKey: "payout-4")
            let error = await self.error { () async throws(MoMoError) in
                try await client.transfer(reference: reference, amount: "20", externalID: "payout-4", payee: Self.payer, payerMessage: "", payeeNote: "")
            }
            guard case .transport(let cause)? = error else { Issue.record("expected a transport error, got \(String(describing: error))"); return }
            #expect(cause.code == .timeout && error?.outcomeUnknown == true, "the money may have moved")
            let again = await self.error { () async throws(MoMoError) in
                try await client.transfer(reference: reference, amount: "20", externalID: "payout-4", payee: Self.payer, payerMessage: "", payeeNote: "")
            }
            #expect(again == .duplicateReference, "the first got there: the retry is refused, not paid")
            let status = try await client.transferStatus(reference)
            #expect(status.status == .successful)
            #expect(fake.paidCount(reference.uuidString) == 1)
        }
    }

    @Test func aStatusMoMoNeverSawIsNotFoundAndAServerErrorIsUnknown() async throws {
        try await self.withClient { client, fake in
            let never = MoMoReference(idempotencyKey: "never-sent")
            let missing = await self.error { () async throws(MoMoError) in _ = try await client.transferStatus(never) }
            #expect(missing == .notFound && missing?.outcomeUnknown == false)
            let reference = MoMoReference(idempotencyKey: "deposit-5")
            fake.state.withLock { $0.defaultOutcome = .pending }
            try await client.requestToPay(reference: reference, amount: "1", externalID: "deposit-5", payer: Self.payer, payerMessage: "", payeeNote: "")
            fake.state.withLock { $0.failStatusQueries = 2 }
            for _ in 0..<2 {
                let error = await self.error { () async throws(MoMoError) in _ = try await client.requestToPayStatus(reference) }
                #expect(error == .serverError(status: 500) && error?.outcomeUnknown == true)
            }
            #expect(try await client.requestToPayStatus(reference).status == .pending)
            fake.settle(reference.uuidString, .successful)
            #expect(try await client.requestToPayStatus(reference).status == .successful)
            let crossed = await self.error { () async throws(MoMoError) in _ = try await client.transferStatus(reference) }
            #expect(crossed == .notFound, "a collection reference is unknown to disbursements")
        }
    }

    @Test func aRevokedTokenIsReplacedOnceAndTheCallRetriedOnce() async throws {
        try await self.withClient { client, fake in
            let reference = MoMoReference(idempotencyKey: "deposit-6")
            try await client.requestToPay(reference: reference, amount: "3", externalID: "deposit-6", payer: Self.payer, payerMessage: "", payeeNote: "")
            fake.revokeTokens()
            #expect(try await client.requestToPayStatus(reference).status == .successful)
            #expect(fake.tokensIssued(.collection) == 2)
        }
    }

    @Test func concurrentCallersWaitForOneTokenPerProduct() async throws {
        try await self.withClient { client, fake in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let reference = MoMoReference(idempotencyKey: "c-\(index)")
                        try await client.transfer(reference: reference, amount: "1", externalID: "c-\(index)", payee: Self.payer, payerMessage: "", payeeNote: "")
                    }
                }
                try await group.waitForAll()
            }
            #expect(fake.tokensIssued(.disbursement) == 1)
        }
    }

    @Test func badFieldsAreRefusedBeforeTheyLeave() async throws {
        try await self.withClient { client, fake in
            let reference = MoMoReference(idempotencyKey: "bad")
            let calls: [(String, String, String, String)] = [
                ("1e3", "x", Self.payer, ""), ("12.505", "x", Self.payer, ""), ("0", "x", Self.payer, ""), ("-5", "x", Self.payer, ""),
                ("5", "x", "+46733123450", ""), ("5", "x", "0712", ""), ("5", "", Self.payer, ""), ("5", "has space", Self.payer, ""),
                ("5", "x", Self.payer, String(repeating: "m", count: 161)), ("5", "x", Self.payer, "line\nbreak"),
            ]
            for (amount, external, payer, message) in calls {
                let error = await self.error { () async throws(MoMoError) in
                    try await client.requestToPay(reference: reference, amount: amount, externalID: external, payer: payer, payerMessage: message, payeeNote: "")
                }
                guard case .invalidRequest? = error else { Issue.record("\(amount) \(external) \(payer): \(String(describing: error))"); continue }
            }
            #expect(fake.tokensIssued(.collection) == 0, "nothing left the process")
        }
        try await self.withClient(callbackURL: nil, { $0.callbackURL = "ftp://gw.example.com/cb"; $0.targetEnvironment = "sandbox" }) { client, fake in
            let error = await self.error { () async throws(MoMoError) in
                try await client.requestToPay(reference: MoMoReference(idempotencyKey: "cb"), amount: "5", externalID: "cb", payer: Self.payer, payerMessage: "", payeeNote: "")
            }
            guard case .invalidRequest? = error else { Issue.record("a bad callback URL must be refused: \(String(describing: error))"); return }
        }
    }

    @Test func everyCallIsTimedUnderItsEndpointAndOutcome() async throws {
        let fake = try await FakeMoMo.start()
        let http = CurlClient()
        let recorded = TestMetrics()
        let client = MoMoClient(configuration: fake.configuration(), http: http, metrics: MetricCache(factory: recorded))
        let reference = MoMoReference(idempotencyKey: "timed")
        try await client.requestToPay(reference: reference, amount: "1", externalID: "timed", payer: Self.payer, payerMessage: "", payeeNote: "")
        _ = try await client.requestToPayStatus(reference)
        _ = try? await client.transferStatus(reference)
        for (endpoint, outcome) in [("collection_token", "ok"), ("request_to_pay", "ok"), ("request_to_pay_status", "ok"), ("transfer_status", "refused")] {
            #expect((try? recorded.expectTimer("momo_request_duration_seconds", [("endpoint", endpoint), ("outcome", outcome)]))?.values.isEmpty == false, "\(endpoint)")
        }
        #expect(fake.violations.isEmpty, "\(fake.violations)")
        await http.shutdown()
        await fake.stop()
    }

    @Test func theFakeRefusesWhatMoMoWouldAndRecordsIt() async throws {
        let fake = try await FakeMoMo.start()
        let http = CurlClient()
        let reference = MoMoReference(idempotencyKey: "strict")
        var wrongKey = fake.configuration()
        wrongKey.collection.subscriptionKey = "not-the-key"
        var wrongMarket = fake.configuration()
        wrongMarket.targetEnvironment = "mtnghana"
        var wrongCurrency = fake.configuration()
        wrongCurrency.currency = "GHS"
        for (configuration, expected) in [
            (wrongKey, "collection token without its subscription key"), (wrongMarket, "X-Target-Environment other than sandbox"),
            (wrongCurrency, "currency is not EUR"),
        ] {
            let client = MoMoClient(configuration: configuration, http: http)
            let error = await self.error { () async throws(MoMoError) in
                try await client.requestToPay(reference: reference, amount: "1", externalID: "strict", payer: Self.payer, payerMessage: "", payeeNote: "")
            }
            guard case .refused? = error else { Issue.record("\(expected): \(String(describing: error))"); continue }
            #expect(fake.violations.last?.contains(expected) == true, "\(fake.violations)")
        }
        #expect(fake.movement(reference.uuidString) == nil && fake.violations.count == 3)
        await http.shutdown()
        await fake.stop()
    }
}
