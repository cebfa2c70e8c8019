import Basics
import Curl
import Foundation
import MPesa
import Postgres
import TestSupport
import Testing
import USSDGateway
import Wallet

@testable import MPesaGateway

/// Paybill deposits (M-Pesa C2B) end to end: the fake Daraja takes the URLs the gateway registers,
/// then plays Safaricom for payers, posting the documented validation and confirmation bodies to
/// those URLs of the live gateway.
@Suite struct PaybillTests {
    /// The rig, its gateway served on a real port, and the paybill URLs registered with the fake
    /// Daraja by the gateway's own client (what `mpesa register-c2b` does).
    static func withPaybill(_ body: @Sendable (MPesaRig, Int) async throws -> Void) async throws {
        let rig = try await MPesaRig.make()
        try await rig.harness.run(.live) { client in
            let port = try #require(client.port)
            let urls = MPesaSettings.paybillURLs(publicBaseURL: "http://127.0.0.1:\(port)", callbackToken: nil)
            let daraja = DarajaClient(configuration: rig.fake.configuration(gateway: "http://127.0.0.1:\(port)"), http: rig.http)
            let answer = try await daraja.registerC2B(
                shortcode: FakeDaraja.shortcode, responseType: .completed, confirmationURL: urls.confirmation, validationURL: urls.validation
            )
            #expect(answer == "Success")
            try await body(rig, port)
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    static func review(_ rig: MPesaRig, _ transID: String) async throws -> [String] {
        try await rig.harness.postgres.query("SELECT reason FROM mpesa_review WHERE kind = 'c2b' AND reference = \(transID) ORDER BY id").map {
            try $0.decode(String.self, column: 0)
        }
    }

    @Test func anAcceptedPaymentIsCreditedOnceWithItsReceiptAndARepeatedConfirmationMovesNothing() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Wambui", pin: TypedPINs.achieng)
            // The account as payers type it: spaces and all.
            let typed = local.prefix(4) + " " + local.dropFirst(4).prefix(3) + " " + local.suffix(3)
            let paid = try await rig.fake.payBill(account: String(typed), amount: "750", http: rig.http)
            #expect(paid.validation == "0" && paid.confirmed == true)
            #expect(try await rig.balance(msisdn) == 75_000)
            #expect(try await rig.outbox(msisdn, "deposit_received") == 1, "the SMS receipt")
            let receipt = try await rig.harness.postgres.query("SELECT receipt FROM deposits WHERE idempotency_key = \("c2b:" + paid.transID)")
                .single()
            #expect(try receipt?.decode(String.self, column: 0) == paid.transID)

            // Safaricom repeats the confirmation (twice at once, then once more): nothing more moves.
            async let first = rig.fake.payBill(account: local, amount: "750", validation: false, transID: paid.transID, http: rig.http)
            async let second = rig.fake.payBill(account: local, amount: "750", validation: false, transID: paid.transID, http: rig.http)
            #expect(try await [first.confirmed, second.confirmed] == [true, true])
            #expect(
                try await rig.fake.payBill(
                    account: "254" + local.dropFirst(), amount: "750.00", validation: false, transID: paid.transID, http: rig.http
                ).confirmed == true)
            #expect(try await rig.balance(msisdn) == 75_000)
            #expect(try await rig.outbox(msisdn, "deposit_received") == 1)
            #expect(try await Self.review(rig, paid.transID).isEmpty)
        }
    }

    @Test func validationRejectsAnUnknownAccountAnAmountOutOfLimitsAndAnotherShortcode() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Njeri", pin: TypedPINs.achieng)
            let stranger = try await rig.fake.payBill(account: freshLocal(), amount: "100", http: rig.http)
            #expect(stranger.validation == "C2B00012" && stranger.confirmed == nil, "not a customer: no confirmation follows")
            #expect(try await rig.fake.payBill(account: "INVOICE-77", amount: "100", http: rig.http).validation == "C2B00012", "not a number")
            #expect(
                try await rig.fake.payBill(account: local, amount: "300000", http: rig.http).validation == "C2B00013", "over the per-payment limit")
            #expect(try await rig.fake.payBill(account: local, amount: "100", http: rig.http, shortcode: "600000").validation == "C2B00015")
            #expect(try await rig.balance(msisdn) == 0)
            let answers = try await rig.harness.postgres.query(
                "SELECT rejection_code FROM paybill_payments WHERE validation = 'rejected' ORDER BY rejection_code"
            )
            .map { try $0.decode(String.self, column: 0) }
            #expect(answers == ["C2B00012", "C2B00012", "C2B00013"], "each validation answered is kept")
        }
    }

    @Test func aConfirmationForAnAccountThatNamesNobodyWaitsForAPerson() async throws {
        try await Self.withPaybill { rig, _ in
            // Validation off (or it timed out with ResponseType Completed): the money arrived anyway.
            let lost = try await rig.fake.payBill(account: "0799 000 111", amount: "420", validation: false, http: rig.http)
            #expect(lost.confirmed == true, "acknowledged: Safaricom is owed an answer")
            #expect(try await Self.review(rig, lost.transID).first?.contains("names no customer") == true)
            let kept = try await rig.harness.postgres.query("SELECT body->>'BillRefNumber' FROM mpesa_review WHERE reference = \(lost.transID)")
                .single()
            #expect(try kept?.decode(String.self, column: 0) == "0799 000 111", "the payment is kept whole")
            let deposits = try await rig.harness.postgres.query("SELECT count(*) FROM deposits WHERE idempotency_key LIKE 'c2b:%'").single()!
            #expect(try deposits.decode(Int.self, column: 0) == 0, "nothing credited")
        }
    }

    @Test func aConfirmationForAnotherShortcodeCreditsNothingAndWaitsForAPerson() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Kamau", pin: TypedPINs.achieng)
            let stray = try await rig.fake.payBill(account: local, amount: "300", validation: false, http: rig.http, shortcode: "600000")
            #expect(stray.confirmed == true, "acknowledged: Safaricom is owed an answer")
            #expect(try await rig.balance(msisdn) == 0)
            #expect(try await Self.review(rig, stray.transID) == ["confirmation for another shortcode"])
        }
    }

    @Test func aConfirmationThatDisagreesWithItsValidationIsCreditedAsPaidAndReported() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Atieno", pin: TypedPINs.achieng)
            let validated = try await rig.fake.payBill(account: local, amount: "200", confirm: false, http: rig.http)
            #expect(validated.validation == "0")
            let confirmed = try await rig.fake.payBill(account: local, amount: "250", validation: false, transID: validated.transID, http: rig.http)
            #expect(confirmed.confirmed == true)
            #expect(try await rig.balance(msisdn) == 25_000, "the money that moved is what M-Pesa confirmed")
            #expect(try await Self.review(rig, validated.transID) == ["validated for another amount or account than confirmed"])
        }
    }

    @Test func theReconcilerReportsAnAcceptedValidationWhoseConfirmationNeverCameOnce() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            _ = try await rig.harness.customer(local, name: "Chege", pin: TypedPINs.achieng)
            let accepted = try await rig.fake.payBill(account: local, amount: "300", confirm: false, http: rig.http)
            let confirmedLater = try await rig.fake.payBill(account: local, amount: "150", confirm: false, http: rig.http)
            _ = try await rig.fake.payBill(account: local, amount: "150", validation: false, transID: confirmedLater.transID, http: rig.http)
            let replica = rig.replica()
            #expect(try await replica.reconcile().filter { $0.hasPrefix("paybill") }.isEmpty, "not yet: the confirmation may still come")
            try await rig.harness.postgres.query("UPDATE paybill_payments SET validated_at = now() - interval '11 minutes'")
            #expect(
                try await replica.reconcile().filter { $0.hasPrefix("paybill") } == [
                    "paybill \(accepted.transID): accepted, never confirmed: needs review"
                ])
            #expect(try await replica.reconcile().filter { $0.hasPrefix("paybill") }.isEmpty, "reported once")
            #expect(try await Self.review(rig, accepted.transID).first?.contains("confirmation never came") == true)
            #expect(try await Self.review(rig, confirmedLater.transID).isEmpty)
        }
    }

    @Test func malformedPaybillCallbacksAreRefusedWithAReason() async throws {
        try await Self.withPaybill { rig, port in
            for body in [
                #"{"TransID":"rk tq","TransAmount":"10","BusinessShortCode":"174379","BillRefNumber":"0712345678"}"#,
                #"{"TransID":"RKTQDM7W6S","TransAmount":"-10","BusinessShortCode":"174379","BillRefNumber":"0712345678"}"#,
                #"{"TransID":"RKTQDM7W6S","TransAmount":"10.001","BusinessShortCode":"174379"}"#, "[]",
            ] {
                for path in ["/paybill/validate", "/paybill/confirm"] {
                    let response = try await rig.http.execute(
                        CurlRequest(
                            method: "POST", url: "http://127.0.0.1:\(port)" + path, headers: [("Content-Type", "application/json")],
                            body: Array(body.utf8))
                    )
                    #expect(response.status == 400, "\(path) \(body)")
                }
            }
            let reasons = rig.harness.capture.all.filter { $0.message == "malformed callback" }.compactMap { $0.metadata["reason"] }
            #expect(reasons.contains { $0.contains("TransID") } && reasons.contains { $0.contains("TransAmount") }, "\(reasons)")
        }
    }
}

/// `ussd-gateway mpesa register-c2b`: the URLs under the public base, the response type from the
/// configuration, and a refusal before anything leaves when a URL holds a word Safaricom refuses.
@Suite struct RegisterC2BCommandTests {
    @Test func registersTheURLsWithTheConfiguredResponseTypeAndRefusesAForbiddenWord() async throws {
        let fake = try await FakeDaraja.start()
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": MenusCommandTests.repoMenus,
            "PUBLIC_BASE_URL": "https://gw.example.com/",
            "MPESA_BASE_URL": fake.baseURL, "MPESA_CONSUMER_KEY": FakeDaraja.key, "MPESA_CONSUMER_SECRET": FakeDaraja.secret,
            "MPESA_SHORTCODE": FakeDaraja.shortcode, "MPESA_PASSKEY": FakeDaraja.passkey, "MPESA_B2C_SHORTCODE": FakeDaraja.b2cShortcode,
            "MPESA_INITIATOR_NAME": "testapi", "MPESA_SECURITY_CREDENTIAL": "c2VjcmV0LWNyZWRlbnRpYWw=", "MPESA_C2B_RESPONSE_TYPE": "cancelled",
            "MPESA_CALLBACK_TOKEN": "paybill-token-0123456789abcd",
        ]) { $1 }
        let registered = try await ChildProcess.run(GatewayBinary.path, ["mpesa", "register-c2b"], environment: environment)
        #expect(registered.contains("registered the paybill 174379's URLs (ResponseType Cancelled)"), "\(registered)")
        #expect(!registered.contains("paybill-token"), "the token is not printed")
        let request = try #require(fake.requests("/mpesa/c2b/v2/registerurl").first)
        #expect(request.json["ConfirmationURL"]?.string == "https://gw.example.com/paybill/confirm/paybill-token-0123456789abcd")
        #expect(request.json["ValidationURL"]?.string == "https://gw.example.com/paybill/validate/paybill-token-0123456789abcd")
        #expect(request.json["ResponseType"]?.string == "Cancelled")

        environment["MPESA_CALLBACK_TOKEN"] = "token-with-sql-in-it-0123456"
        let refused = try ChildProcess.start(GatewayBinary.path, ["mpesa", "register-c2b"], environment: environment)
        #expect(await refused.wait() == 1)
        #expect(refused.errorOutput.contains("must not contain \"sql\""), "\(refused.errorOutput)")
        #expect(fake.requests("/mpesa/c2b/v2/registerurl").count == 1, "nothing left for a refused URL")
        #expect(fake.violations.isEmpty, "\(fake.violations)")
        await fake.stop()
    }
}
