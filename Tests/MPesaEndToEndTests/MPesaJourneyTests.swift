import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
@testable import GatewayTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Menus
import MPesa
@testable import MPesaGateway
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway
import MPesaBook
import Wallet

@Suite struct MPesaJourneyTests {
    @Test func aUSSDDepositIsCreditedOnceWhenItsCallbackArrivesThreeTimes() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Wanjiku", pin: TypedPINs.achieng)
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.dial()
            #expect(try await phone.type("2").contains("Enter amount"))
            #expect(try await phone.type("500").contains("Deposit"))
            _ = try await phone.type("1")
            let end = try await phone.type(TypedPINs.achieng)
            #expect(end.hasPrefix("END Check your phone"), "\(end)")
            #expect(try await phone.repeatLast() == end, "a repeated hop replays and pushes nothing new")

            let push = try await rig.request("/mpesa/stkpush/v1/processrequest")
            #expect(push.json["Amount"] == .integer(500))
            #expect(push.json["PhoneNumber"]?.string == msisdn.value)
            let checkout = try await rig.checkout(msisdn)
            let paid = MPesaRig.stkSuccess(checkout, shillings: 500, receipt: "NLJ7RT61SV", phone: msisdn.value)
            async let first: Void = callback(client, "/mpesa/stk/callback", paid)
            async let second: Void = callback(client, "/mpesa/stk/callback", paid)
            _ = try await (first, second)
            try await callback(client, "/mpesa/stk/callback", paid)

            #expect(try await rig.balance(msisdn) == 50_000)
            #expect(try await rig.outbox(msisdn, "deposit_received") == 1)
            #expect(rig.fake.requests("/mpesa/stkpush/v1/processrequest").count == 1, "one push for the deposit")
            let raw = try await rig.harness.postgres.query("SELECT raw_callback->'Body'->'stkCallback'->>'CheckoutRequestID' FROM deposits WHERE checkout_request_id = \(checkout)").single()!
            #expect(try raw.decode(String.self, column: 0) == checkout, "the raw callback is kept with the deposit")
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func aDepositBySMSPushesTheSamePrompt() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Nyambura", pin: TypedPINs.achieng)
        try await rig.harness.run(.live) { client in
            try await sms(client, from: msisdn, "WEKA 150 \(TypedPINs.achieng)", id: "ATXid_dep_\(local)")
            try await sms(client, from: msisdn, "WEKA 150 \(TypedPINs.achieng)", id: "ATXid_dep_\(local)")
            let push = try await rig.request("/mpesa/stkpush/v1/processrequest")
            #expect(push.json["Amount"] == .integer(150) && push.json["PhoneNumber"]?.string == msisdn.value)
            let checkout = try await rig.checkout(msisdn)
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess(checkout, shillings: 150, receipt: "SMSDEP1", phone: msisdn.value))
            #expect(try await rig.balance(msisdn) == 15_000)
            #expect(
                try await throughout(.milliseconds(100)) { rig.fake.requests("/mpesa/stkpush/v1/processrequest").count == 1 }, "a retried SMS pushes nothing new")
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func aCancelledDepositChangesNothingButTellsTheCustomer() async throws {
        let rig = try await MPesaRig.make { $0.mpesa.stkDelay = .milliseconds(700) }
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Kamau", pin: TypedPINs.otieno, shillings: 200)
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, local, graph: rig.harness.graph)
            #expect(try await phone.deposit(300, pin: TypedPINs.otieno).hasPrefix("END "))
            #expect(rig.fake.requests("/mpesa/stkpush/v1/processrequest").isEmpty, "the push waits STK_DELAY_MS after the reply")
            let checkout = try await rig.checkout(msisdn)
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkFailure(checkout, code: 1032, text: "Request cancelled by user"))
            // A success arriving after the final failure is kept for review, not credited twice over.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkFailure(checkout, code: 1032, text: "Request cancelled by user"))
            #expect(try await rig.balance(msisdn) == 20_000)
            #expect(try await rig.outbox(msisdn, "deposit_failed") == 1)
            let reason = try await rig.harness.postgres.query("SELECT params->>'reason' FROM outbox WHERE recipient = \(msisdn.value) AND template = 'deposit_failed'").single()!
            #expect(try reason.decode(String.self, column: 0) == "cancelled")
        }
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func unknownCallbacksAreKeptForReviewAndMalformedOnesRefused() async throws {
        let rig = try await MPesaRig.make { $0.callbackToken = "s3cret-token" }
        try await rig.harness.run(.live) { client in
            try await callback(client, "/mpesa/stk/callback/s3cret-token", MPesaRig.stkSuccess("ws_CO_nobody", shillings: 10, receipt: "ZZZ1", phone: "254700000001"))
            try await callback(client, "/mpesa/b2c/result/s3cret-token", MPesaRig.b2cResult("nobody", code: 0, receipt: "SGX1"))
            let review = try await rig.harness.book.reviewItems()
            #expect(Set(review.map(\.reference)) == ["ws_CO_nobody", "nobody"])
            let bad = try await client.execute(uri: "/mpesa/stk/callback/s3cret-token", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{\"Body\":"))
            #expect(bad.status == .badRequest)
            let shapeless = try await client.execute(uri: "/mpesa/b2c/timeout/s3cret-token", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{\"Result\":{}}"))
            #expect(shapeless.status == .badRequest)
            let noToken = try await client.execute(uri: "/mpesa/stk/callback", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            #expect(noToken.status == .notFound)
        }
        try await rig.harness.audit()
        await rig.finish()

        // MPESA_ALLOWED_CIDRS: a source outside it gets 403 (the test client comes from 127.0.0.1).
        let fenced = try await MPesaRig.make { $0.mpesa.allowedCIDRs = [CIDR("196.201.214.0/24")!] }
        try await fenced.harness.run(.live) { client in
            let refused = try await client.execute(uri: "/mpesa/stk/callback", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            #expect(refused.status == .forbidden)
            let ussd = try await client.execute(uri: "/ussd/africastalking", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "x=1"))
            #expect(ussd.status == .badRequest, "the M-Pesa allowlist is not the USSD routes' business")
        }
        try await fenced.harness.audit()
        await fenced.finish()
    }

    @Test func aWithdrawalIsHeldThenPaidOnceOrRefundedOnlyOnTransactionStatusWord() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Njeri", pin: TypedPINs.achieng, shillings: 1_000)
        try await rig.harness.run(.live) { client in
            try rig.live(client)
            var phone = Phone(client, local, graph: rig.harness.graph)
            let end = try await phone.withdraw(400, pin: TypedPINs.achieng)
            #expect(end.hasPrefix("END ") && end.contains("Fee KES 10. New balance KES 590"), "\(end)")
            let b2c = try await rig.request("/mpesa/b2c/v3/paymentrequest")
            let payoutID = try #require(b2c.json["OriginatorConversationID"]?.string)
            #expect(b2c.json["Amount"]?.string == "400" && b2c.json["PartyB"]?.string == msisdn.value)
            var payout = try await rig.payoutStatus(msisdn)
            #expect(payout.id == payoutID && payout.held == 40_000)
            #expect(try await rig.balance(msisdn) == 59_000)
            try await rig.acknowledged(payoutID)

            let paid = rig.fake.b2cResult(payoutID, code: 0)
            try await callback(client, "/mpesa/b2c/result", paid)
            try await callback(client, "/mpesa/b2c/result", paid)
            // A contradicting result after the final one changes nothing.
            try await callback(client, "/mpesa/b2c/result", rig.fake.b2cResult(payoutID, code: 2001))
            payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "paid" && payout.held == 0)
            #expect(try await rig.balance(msisdn) == 59_000)
            #expect(try await rig.outbox(msisdn, "withdrawal_paid") == 1)

            // A second withdrawal that M-Pesa did not pay. Its failure result (twice) releases nothing
            // by itself: the hold goes only once Transaction Status says Failed.
            _ = try await phone.withdraw(100, pin: TypedPINs.achieng)
            let second = try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 2)
            let secondID = try #require(second.json["OriginatorConversationID"]?.string)
            #expect(try await rig.balance(msisdn) == 48_500, "100 held and its fee of 5 charged")
            try await rig.acknowledged(secondID)
            rig.fake.setPayoutStatus(secondID, "Failed")
            let failed = rig.fake.b2cResult(secondID, code: 2040)
            try await callback(client, "/mpesa/b2c/result", failed)
            try await callback(client, "/mpesa/b2c/result", failed)
            let query = try await rig.request("/mpesa/transactionstatus/v1/query")
            #expect(query.json["OriginalConversationID"]?.string == secondID)
            #expect(try await rig.payoutStatus(msisdn).status == "unknown", "a failure result is a claim")
            #expect(try await rig.balance(msisdn) == 48_500, "nothing released before Transaction Status answers")
            try await rig.answerStatusQueries()
            #expect(try await rig.balance(msisdn) == 59_000, "the money and its fee came back")
            #expect(try await rig.payoutStatus(msisdn).status == "failed")
            // The answer again, and the failure again: nothing more.
            try await rig.answerStatusQueries(again: true)
            try await callback(client, "/mpesa/b2c/result", failed)
            #expect(try await rig.balance(msisdn) == 59_000)
            #expect(try await rig.outbox(msisdn, "withdrawal_failed") == 1)
            #expect(try await rig.harness.movements(kind: "withdrawal") == 2)
            #expect(try await rig.harness.postgres.query("SELECT count(*) FROM mpesa_review").single()!.decode(Int.self, column: 0) == 1, "only the contradiction")
            // The receiver's name in B2C results and in Transaction Status answers is kept sealed:
            // none in clear in a backup, in any case.
            let dump = try await TestServers.dump(rig.harness.postgres.configuration).lowercased()
            #expect(!dump.contains(FakeDaraja.payerFirstName.lowercased()) && !dump.contains(FakeDaraja.payerLastName.lowercased()))
            #expect(dump.contains("sealed:v1:"))
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    /// Someone holding the callback token posts a failure for a payout in flight before Safaricom's
    /// result: it names another ConversationID than Daraja acknowledged, so it goes to review and
    /// moves nothing; the real result then pays it once. Even a failure naming the right pair only
    /// makes the gateway ask Transaction Status, and a Completed answer pays rather than refunds.
    @Test func aForgedB2CFailureBeforeTheRealSuccessRefundsNothing() async throws {
        let rig = try await MPesaRig.make()
        let (local, other) = (freshLocal(), freshLocal())
        let msisdn = try await rig.harness.customer(local, name: "Wairimu", pin: TypedPINs.achieng, shillings: 1_000)
        let otherMSISDN = try await rig.harness.customer(other, name: "Kibet", pin: TypedPINs.otieno, shillings: 1_000)
        try await rig.harness.run(.live) { client in
            try rig.live(client)
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.withdraw(400, pin: TypedPINs.achieng)
            let payoutID = try #require(try await rig.request("/mpesa/b2c/v3/paymentrequest").json["OriginatorConversationID"]?.string)
            try await rig.acknowledged(payoutID)

            // The forgery: the payout's id, a made-up ConversationID, a failure code.
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(payoutID, code: 2001, conversation: "AG_20240706_forged"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(payoutID, code: 2001, conversation: "AG_20240706_forged"))
            #expect(try await rig.payoutStatus(msisdn).status == "sent")
            #expect(rig.fake.requests("/mpesa/transactionstatus/v1/query").isEmpty, "a forged result is not even a reason to ask")
            #expect(try await rig.balance(msisdn) == 59_000, "nothing refunded")
            // Safaricom's result.
            try await callback(client, "/mpesa/b2c/result", rig.fake.b2cResult(payoutID, code: 0))
            let payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "paid" && payout.held == 0)
            #expect(try await rig.balance(msisdn) == 59_000, "paid once: 400 and its fee of 10")
            #expect(try await rig.outbox(msisdn, "withdrawal_paid") == 1)
            #expect(try await rig.outbox(msisdn, "withdrawal_failed") == 0)
            let reviews = try await rig.reviews(payoutID)
            #expect(reviews == ["b2c_result conflict"], "one review row: \(reviews)")

            // A failure naming the acknowledged pair (the token and the ids both leaked): the gateway
            // asks Transaction Status, which says Completed: paid, nothing refunded.
            var second = Phone(client, other, graph: rig.harness.graph)
            _ = try await second.withdraw(300, pin: TypedPINs.otieno)
            let secondID = try #require(try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 2).json["OriginatorConversationID"]?.string)
            try await rig.acknowledged(secondID)
            try await callback(client, "/mpesa/b2c/result", rig.fake.b2cResult(secondID, code: 2001))
            _ = try await rig.request("/mpesa/transactionstatus/v1/query")
            #expect(try await rig.balance(otherMSISDN) == 69_000, "held while Transaction Status is asked")
            try await rig.answerStatusQueries()
            #expect(try await rig.payoutStatus(otherMSISDN).status == "paid")
            #expect(try await rig.balance(otherMSISDN) == 69_000, "paid: 300 and its fee of 10 gone, nothing refunded")
            #expect(try await rig.outbox(otherMSISDN, "withdrawal_failed") == 0)
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func aTimedOutWithdrawalKeepsItsHoldUntilReconciliationResolvesIt() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Baraka", pin: TypedPINs.otieno, shillings: 500)
        try await rig.harness.run(.live) { client in
            try rig.live(client)
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.withdraw(200, pin: TypedPINs.otieno)
            let b2c = try await rig.request("/mpesa/b2c/v3/paymentrequest")
            let payoutID = try #require(b2c.json["OriginatorConversationID"]?.string)
            try await rig.acknowledged(payoutID)
            try await callback(client, "/mpesa/b2c/timeout", rig.fake.b2cResult(payoutID, code: 1))
            var payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "unknown" && payout.held == 20_000, "a timeout is not a failure: the funds stay held")

            try await rig.makeDue()
            // Two replicas reconcile at once: the row is claimed by one of them only.
            let (one, two) = (rig.replica(), rig.replica())
            async let left = one.reconcile()
            async let right = two.reconcile()
            let changes = try await left + right
            #expect(changes.count == 1 && changes[0].contains("transaction status"), "\(changes)")
            let query = try await rig.request("/mpesa/transactionstatus/v1/query")
            #expect(query.json["OriginalConversationID"]?.string == payoutID)
            #expect(rig.fake.requests("/mpesa/b2c/v3/paymentrequest").count == 1, "never a second payment while the first is unknown")
            let queryID = try #require(query.json["OriginatorConversationID"]?.string)
            #expect(!queryID.contains(payoutID) && queryID.count == 34, "a random id, not derived from the payout's: \(queryID)")
            payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "unknown" && payout.held == 20_000)

            // A forged answer under the query's id (it leaked) with a made-up ConversationID, and one
            // under made-up ids: neither settles anything.
            try await rig.acknowledgedQuery(queryID)
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(queryID, code: 0, receipt: "SGFORGED1", status: "Failed", conversation: "AG_made_up"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult("TS" + String(repeating: "0", count: 32), code: 0, receipt: "SGFORGED2", status: "Failed"))
            payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "unknown" && payout.held == 20_000, "forged answers settle nothing")

            // Safaricom posts the status answer to the result URL under the query's id.
            try await rig.answerStatusQueries()
            payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "paid" && payout.held == 0)
            #expect(try await rig.balance(msisdn) == 29_000, "200 and its fee of 10")
            // The late original result changes nothing more.
            try await callback(client, "/mpesa/b2c/result", rig.fake.b2cResult(payoutID, code: 0))
            #expect(try await rig.outbox(msisdn, "withdrawal_paid") == 1)
            let kept = try await rig.harness.postgres.query("SELECT conversation_id, answer IS NOT NULL FROM mpesa_status_queries WHERE id = \(queryID)").single()!
            #expect(try kept.decode((String?, Bool).self) == (rig.fake.statusQueries.first?.conversationID, true), "the query's ConversationID and answer are kept")
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func aDepositWhoseCallbackNeverComesIsResolvedByTheReconciler() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Auma", pin: TypedPINs.achieng)
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.deposit(250, pin: TypedPINs.achieng)
            let checkout = try await rig.checkout(msisdn)
            let replica = rig.replica()

            // Not yet due: nothing is asked.
            #expect(try await replica.reconcile().isEmpty)
            try await rig.makeDue()
            #expect(try await replica.reconcile().isEmpty, "'being processed' leaves it pending")
            #expect(rig.fake.requests("/mpesa/stkpushquery/v1/query").count == 1)

            rig.fake.state.withLock { $0.query = .paid }
            try await rig.makeDue()
            let changes = try await replica.reconcile()
            #expect(changes.count == 1 && changes[0].contains("credited"), "\(changes)")
            #expect(try await rig.balance(msisdn) == 25_000)

            // The callback arrives late after all: nothing more is credited.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess(checkout, shillings: 250, receipt: "LATE1", phone: msisdn.value))
            #expect(try await rig.balance(msisdn) == 25_000)
            #expect(try await rig.outbox(msisdn, "deposit_received") == 1)
            try await rig.makeDue()
            #expect(try await replica.reconcile().isEmpty, "a completed deposit is never checked again")
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func pushesThatAreRefusedOrUnansweredAreFailedOrRetriedWithTheSameID() async throws {
        let rig = try await MPesaRig.make()
        let (payer, withdrawer) = (freshLocal(), freshLocal())
        let payerMSISDN = try await rig.harness.customer(payer, name: "Chebet", pin: TypedPINs.achieng)
        let withdrawerMSISDN = try await rig.harness.customer(withdrawer, name: "Mutua", pin: TypedPINs.otieno, shillings: 300)
        rig.fake.state.withLock {
            $0.stk = [.error(status: 500, code: "500.001.1001", message: "Merchant does not exist")]
            $0.b2c = [.error(status: 503, code: "500.003.02", message: "Spike arrest violation")]
        }
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, payer, graph: rig.harness.graph)
            _ = try await phone.deposit(100, pin: TypedPINs.achieng)
            _ = try await rig.request("/mpesa/stkpush/v1/processrequest")
            _ = try await eventually(within: .seconds(30)) { try await rig.outbox(payerMSISDN, "deposit_failed") > 0 }
            #expect(try await rig.outbox(payerMSISDN, "deposit_failed") == 1, "a refused push fails the deposit and says so")

            var other = Phone(client, withdrawer, graph: rig.harness.graph)
            _ = try await other.withdraw(100, pin: TypedPINs.otieno)
            let first = try await rig.request("/mpesa/b2c/v3/paymentrequest")
            try await rig.logged("B2C unanswered")
            #expect(try await rig.payoutStatus(withdrawerMSISDN).status == "reserved", "spike arrest: still held, not failed")
            try await rig.makeDue()
            let changes = try await rig.replica().reconcile()
            #expect(changes.count == 1 && changes[0].contains("same OriginatorConversationID"), "\(changes)")
            let again = try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 2)
            #expect(again.json["OriginatorConversationID"] == first.json["OriginatorConversationID"])
            #expect(try await rig.payoutStatus(withdrawerMSISDN).status == "sent")
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func unansweredCallsLeaveMoneyPendingUntilTheReconcilerResolvesIt() async throws {
        let rig = try await MPesaRig.make { $0.mpesa.requestTimeout = .milliseconds(300) }
        let (payer, withdrawer) = (freshLocal(), freshLocal())
        let payerMSISDN = try await rig.harness.customer(payer, name: "Atieno", pin: TypedPINs.achieng)
        let withdrawerMSISDN = try await rig.harness.customer(withdrawer, name: "Onyango", pin: TypedPINs.otieno, shillings: 300)
        rig.fake.state.withLock {
            $0.stk = [.hang]
            $0.b2c = [.hang]
        }
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, payer, graph: rig.harness.graph)
            #expect(try await phone.deposit(100, pin: TypedPINs.achieng).hasPrefix("END Check your phone"))
            var other = Phone(client, withdrawer, graph: rig.harness.graph)
            _ = try await other.withdraw(100, pin: TypedPINs.otieno)
            let first = try await rig.request("/mpesa/b2c/v3/paymentrequest")
            _ = try await rig.request("/mpesa/stkpush/v1/processrequest")
            try await rig.logged("STK push unanswered")
            try await rig.logged("B2C unanswered")
            // No answer: nothing is decided yet.
            let deposit = try #require(try await rig.harness.postgres.query(
                "SELECT id, status, checkout_request_id FROM deposits WHERE customer_id = (SELECT id FROM customers WHERE msisdn = \(payerMSISDN.value))"
            ).single()).decode((Int64, String, String?).self)
            #expect(deposit.1 == "pending" && deposit.2 == nil)
            #expect(try await rig.payoutStatus(withdrawerMSISDN).status == "reserved")
            #expect(try await rig.balance(withdrawerMSISDN) == 19_500, "the hold stays (and the fee of 5)")

            try await rig.makeDue()
            let early = try await rig.replica().reconcile()
            #expect(!early.contains { $0.contains("deposit \(deposit.0): failed") }, "a payment may still come: \(early)")
            #expect(early.contains { $0.contains("same OriginatorConversationID") }, "\(early)")
            // Past the window in which a payment could still be matched, the deposit is failed.
            try await rig.harness.postgres.query("UPDATE deposits SET created_at = now() - interval '11 minutes' WHERE id = \(deposit.0)")
            try await rig.makeDue()
            let changes = try await rig.replica().reconcile()
            #expect(changes.contains { $0.contains("deposit \(deposit.0): failed") }, "\(changes)")
            let again = try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 2)
            #expect(again.json["OriginatorConversationID"] == first.json["OriginatorConversationID"])
            #expect(try await rig.payoutStatus(withdrawerMSISDN).status == "sent")
            #expect(try await rig.outbox(payerMSISDN, "deposit_failed") == 1)
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    /// Daraja's answer to the push is lost, and then the customer's payment arrives under a
    /// CheckoutRequestID we never learnt. It is matched to that deposit, but a callback is unsigned:
    /// the credit waits for an STK Query, and lands once with the callback's receipt. Where two
    /// deposits could be it, nothing is guessed; a push Daraja refused is never matched; a query that
    /// contradicts the callback goes to a person; past ten minutes unmatched deposits are failed.
    @Test func aPaymentForAPushWhoseAnswerWasLostIsCreditedOnlyOnceAQueryConfirmsIt() async throws {
        let rig = try await MPesaRig.make { $0.mpesa.requestTimeout = .milliseconds(300) }
        let (payer, twice, refused, doubted) = (freshLocal(), freshLocal(), freshLocal(), freshLocal())
        let payerMSISDN = try await rig.harness.customer(payer, name: "Wanjiru", pin: TypedPINs.achieng)
        let twiceMSISDN = try await rig.harness.customer(twice, name: "Kiprop", pin: TypedPINs.otieno)
        let refusedMSISDN = try await rig.harness.customer(refused, name: "Chebet", pin: TypedPINs.achieng)
        let doubtedMSISDN = try await rig.harness.customer(doubted, name: "Mutua", pin: TypedPINs.otieno)
        rig.fake.state.withLock { $0.stk = [.hang, .hang, .hang, .error(status: 400, code: "400.002.02", message: "Bad Request - Invalid PhoneNumber"), .hang] }
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, payer, graph: rig.harness.graph)
            _ = try await phone.deposit(100, pin: TypedPINs.achieng)
            _ = try await rig.request("/mpesa/stkpush/v1/processrequest")
            var other = Phone(client, twice, graph: rig.harness.graph)
            _ = try await other.deposit(150, pin: TypedPINs.otieno)
            _ = try await other.deposit(150, pin: TypedPINs.otieno)
            _ = try await rig.request("/mpesa/stkpush/v1/processrequest", count: 3)
            var third = Phone(client, refused, graph: rig.harness.graph)
            _ = try await third.deposit(130, pin: TypedPINs.achieng)
            try await rig.logged("STK push refused")
            var fourth = Phone(client, doubted, graph: rig.harness.graph)
            _ = try await fourth.deposit(170, pin: TypedPINs.otieno)
            try await rig.logged("STK push unanswered", count: 4)

            // The payment for the lost push arrives three times, two of them at once. Nothing is
            // credited before a query says paid.
            let orphan = MPesaRig.stkSuccess("ws_CO_LOST_ANSWER_1", shillings: 100, receipt: "LOSTANS01", phone: payerMSISDN.value)
            async let first: Void = callback(client, "/mpesa/stk/callback", orphan)
            async let second: Void = callback(client, "/mpesa/stk/callback", orphan)
            _ = try await (first, second)
            try await callback(client, "/mpesa/stk/callback", orphan)
            _ = try await rig.request("/mpesa/stkpushquery/v1/query")
            try await rig.logged("matched payment not confirmed yet; the reconciler asks again")
            #expect(try await rig.balance(payerMSISDN) == 0, "the fake's query still says pending")

            // Two unconfirmed deposits of the same phone and amount: which one was paid is a guess.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_LOST_ANSWER_2", shillings: 150, receipt: "LOSTANS02", phone: twiceMSISDN.value))
            // A push Daraja refused never reached the phone: a payment naming it is not matched.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_LOST_ANSWER_3", shillings: 130, receipt: "LOSTANS03", phone: refusedMSISDN.value))
            // A payment of another amount matches nothing either.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_LOST_ANSWER_4", shillings: 120, receipt: "LOSTANS04", phone: payerMSISDN.value))
            for reference in ["ws_CO_LOST_ANSWER_2", "ws_CO_LOST_ANSWER_3", "ws_CO_LOST_ANSWER_4"] {
                let kept = try await rig.harness.postgres.query("SELECT count(*) FROM mpesa_review WHERE reference = \(reference)").single()!.decode(Int.self, column: 0)
                #expect(kept == 1, "\(reference)")
            }
            #expect(try await rig.balance(twiceMSISDN) == 0)
            #expect(try await rig.balance(refusedMSISDN) == 0)

            // The query contradicts the callback: kept as a conflict, not credited.
            rig.fake.state.withLock { $0.query = .failed(1032, "Request cancelled by user") }
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_LOST_ANSWER_5", shillings: 170, receipt: "LOSTANS05", phone: doubtedMSISDN.value))
            try await rig.logged("M-Pesa reports disagree; kept for review")
            #expect(try await rig.balance(doubtedMSISDN) == 0)
            let conflict = try #require(try await rig.harness.book.reviewItems().first { $0.reference == "ws_CO_LOST_ANSWER_5" })
            #expect(conflict.reason == "conflict" && conflict.kind == "stk_query" && conflict.depositID != nil)
            #expect(conflict.earlierResult?.contains("LOSTANS05") == true && conflict.newResult?.contains("1032") == true)

            // The reconciler's query says paid (another process: the gateway made its last call).
            rig.fake.state.withLock { $0.query = .paid }
            try await rig.makeDue()
            let changes = try await rig.replica().reconcile()
            #expect(!changes.contains { $0.contains("never confirmed") }, "within the window a payment may still come: \(changes)")
            #expect(try await rig.balance(payerMSISDN) == 10_000, "credited once, after the query")
            try await callback(client, "/mpesa/stk/callback", orphan)
            let row = try #require(try await rig.harness.postgres.query(
                "SELECT status, checkout_request_id, receipt FROM deposits WHERE customer_id = (SELECT id FROM customers WHERE msisdn = \(payerMSISDN.value))"
            ).single()).decode((String, String?, String?).self)
            #expect(row.0 == "completed" && row.1 == "ws_CO_LOST_ANSWER_1" && row.2 == "LOSTANS01", "with the callback's receipt")
            #expect(try await rig.outbox(payerMSISDN, "deposit_received") == 1)

            // Ten minutes on, the deposits nothing matched are failed, each with one notice.
            try await rig.harness.postgres.query("UPDATE deposits SET created_at = now() - interval '11 minutes'")
            try await rig.makeDue()
            let late = try await rig.replica().reconcile()
            #expect(late.filter { $0.contains("failed, the STK push was never confirmed") }.count == 2, "\(late)")
            #expect(try await rig.outbox(twiceMSISDN, "deposit_failed") == 2)
        }
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func theReconcileCommandRunsOnePassAndSaysWhatChanged() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Kiprop", pin: TypedPINs.achieng)
        let deposit = try await rig.harness.book.beginDeposit(msisdn, amount: .shillings(70), key: IdempotencyKey("cli-\(local)")!)
        try await rig.harness.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_cli_\(local)")
        rig.fake.state.withLock { $0.query = .failed(1037, "DS timeout user cannot be reached") }
        try await rig.makeDue()
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus,
            "DATABASE_URL": rig.harness.config.postgres.connectionString, "PUBLIC_BASE_URL": "https://gateway.example.com",
            "MPESA_BASE_URL": rig.fake.baseURL, "MPESA_CONSUMER_KEY": FakeDaraja.key, "MPESA_CONSUMER_SECRET": FakeDaraja.secret,
            "MPESA_SHORTCODE": FakeDaraja.shortcode, "MPESA_PASSKEY": FakeDaraja.passkey, "MPESA_B2C_SHORTCODE": FakeDaraja.b2cShortcode,
            "MPESA_INITIATOR_NAME": "testapi", "MPESA_SECURITY_CREDENTIAL": "c2VjcmV0LWNyZWRlbnRpYWw=",
        ]) { $1 }
        let first = try ChildProcess.start(GatewayBinary.path, ["mpesa", "reconcile"], environment: environment)
        #expect(await first.wait() == 0, "\(first.errorOutput)")
        #expect(first.output.contains("deposit \(deposit.id): failed (STK query: 1037"), "\(first.output)")
        #expect(try await rig.harness.book.deposit(id: deposit.id)?.status == .failed)
        #expect(try await rig.outbox(msisdn, "deposit_failed") == 1)
        let second = try ChildProcess.start(GatewayBinary.path, ["mpesa", "reconcile"], environment: environment)
        #expect(await second.wait() == 0)
        #expect(second.output.contains("nothing to change"))
        for secret in [FakeDaraja.secret, FakeDaraja.passkey, "c2VjcmV0LWNyZWRlbnRpYWw="] {
            #expect(!first.output.contains(secret) && !first.errorOutput.contains(secret), "a secret reached the output")
        }
        environment["MPESA_PASSKEY"] = nil
        let unconfigured = try ChildProcess.start(GatewayBinary.path, ["mpesa", "reconcile"], environment: environment)
        #expect(await unconfigured.wait() == 2)
        #expect(unconfigured.errorOutput.contains("MPESA_PASSKEY"))
        #expect(rig.fake.violations.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func withoutMPesaSettingsDepositsAreUnavailableAndReadyzSaysSo() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Wafula", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            let end = try await phone.deposit(100, pin: TypedPINs.achieng)
            #expect(end.hasPrefix("END ") && end.localizedCaseInsensitiveContains("not available"), "\(end)")
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(String(buffer: ready.body).contains("mpesa: not configured"))
            let callback = try await client.execute(uri: "/mpesa/stk/callback", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            #expect(callback.status == .serviceUnavailable)
        }
        #expect(try await harness.postgres.query("SELECT count(*) FROM deposits WHERE idempotency_key NOT LIKE 'fund-%'").single()!.decode(Int.self, column: 0) == 0)
        try await harness.audit()
        await harness.finish()
    }
}
