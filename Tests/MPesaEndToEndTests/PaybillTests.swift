import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import MPesa
import Postgres
import TestSupport
import Testing
import USSDGateway
import MPesaBook
import Wallet

@testable import MPesaGateway

/// Paybill deposits (M-Pesa C2B) end to end: the fake Daraja takes the URLs the gateway registers,
/// then plays Safaricom for payers, posting the documented validation and confirmation bodies to
/// those URLs of the live gateway, and answers the gateway's Transaction Status queries about the
/// payments it knows, on the gateway's result route, when the test says.
@Suite struct PaybillTests {
    /// The rig, its gateway served on a real port, and the paybill URLs registered with the fake
    /// Daraja by the gateway's own client (what `mpesa register-c2b` does).
    static func withPaybill(
        _ adjust: (inout GatewayConfig) -> Void = { _ in }, _ body: @Sendable (MPesaRig, Int) async throws -> Void
    ) async throws {
        let rig = try await MPesaRig.make(adjust)
        try await rig.harness.run(.live) { client in
            let port = try #require(client.port)
            try rig.live(client)
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

    static func state(_ rig: MPesaRig, _ transID: String) async throws -> String? {
        try await rig.harness.postgres.query("SELECT state FROM paybill_payments WHERE trans_id = \(transID)").single()?.decode(String?.self, column: 0)
    }

    static let statusPath = "/mpesa/transactionstatus/v1/query"

    @Test func aRealPaymentConfirmedThreeTimesWithItsStatusAnswerSentTwiceIsCreditedOnce() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Wambui", pin: TypedPINs.achieng)
            // The account as payers type it: spaces and all.
            let typed = local.prefix(4) + " " + local.dropFirst(4).prefix(3) + " " + local.suffix(3)
            let paid = try await rig.fake.payBill(account: String(typed), amount: "750", http: rig.http)
            #expect(paid.validation == "0" && paid.confirmed == true)

            // The gateway asks Safaricom about the receipt, as the paybill, with the paybill's initiator.
            let query = try await rig.request(Self.statusPath)
            #expect(query.json["TransactionID"]?.string == paid.transID && query.json["OriginalConversationID"] == nil)
            #expect(query.json["PartyA"]?.string == FakeDaraja.shortcode && query.json["IdentifierType"]?.string == "4")
            #expect(query.json["Initiator"]?.string == FakeDaraja.c2bInitiator && query.json["CommandID"]?.string == "TransactionStatusQuery")
            let queryID = try #require(query.json["OriginatorConversationID"]?.string)
            #expect(queryID.count == 34 && !queryID.contains(paid.transID), "a random id, not derived from the receipt: \(queryID)")
            #expect(try await rig.balance(msisdn) == 0, "nothing before Safaricom's answer")

            // Safaricom repeats the confirmation (twice at once, then once more): nothing more is asked.
            async let first = rig.fake.payBill(account: local, amount: "750", validation: false, transID: paid.transID, http: rig.http)
            async let second = rig.fake.payBill(account: local, amount: "750", validation: false, transID: paid.transID, http: rig.http)
            #expect(try await [first.confirmed, second.confirmed] == [true, true])
            #expect(
                try await rig.fake.payBill(
                    account: "254" + local.dropFirst(), amount: "750.00", validation: false, transID: paid.transID, http: rig.http
                ).confirmed == true)
            #expect(try await rig.balance(msisdn) == 0)

            // Its answer comes, then again: credited once, with the SMS receipt.
            #expect(try await rig.answerStatusQueries() == 1)
            #expect(try await rig.balance(msisdn) == 75_000)
            #expect(try await rig.answerStatusQueries(again: true) == 1)
            #expect(try await rig.balance(msisdn) == 75_000)
            #expect(try await rig.outbox(msisdn, "deposit_received") == 1, "the SMS receipt")
            #expect(rig.fake.requests(Self.statusPath).count == 1, "one query for the payment")
            let deposit = try #require(
                try await rig.harness.postgres.query(
                    """
                    SELECT d.receipt, t.metadata->>'cause', t.id FROM deposits d JOIN transfers t ON t.id = d.transfer_id
                    WHERE d.idempotency_key = \("c2b:" + paid.transID)
                    """
                ).single()
            ).decode((String, String, String).self)
            #expect(deposit.0 == paid.transID && deposit.1 == "c2b:" + paid.transID && deposit.2.hasPrefix("deposit:"), "\(deposit)")
            #expect(try await Self.state(rig, paid.transID) == "credited")
            #expect(try await Self.review(rig, paid.transID).isEmpty)

            // The payer's names are kept sealed for the customer, in the confirmation and in
            // Safaricom's answer; a backup holds none of them in clear.
            let kept = try await rig.harness.postgres.query(
                "SELECT confirmation->>'FirstName', confirmation->>'LastName', confirmation->>'TransAmount' FROM paybill_payments WHERE trans_id = \(paid.transID)"
            ).single()!.decode((String, String, String).self)
            #expect(kept.0.hasPrefix("sealed:v1:") && kept.1.hasPrefix("sealed:v1:") && kept.2 == "750", "\(kept)")
            #expect(try await rig.harness.book.openName(kept.0, reference: paid.transID, key: "FirstName") == FakeDaraja.payerFirstName)
            await #expect(throws: PersonalDataError.self) { try await rig.harness.book.openName(kept.0, reference: "SOMEOTHER1", key: "FirstName") }
            let dump = try await TestServers.dump(rig.harness.postgres.configuration)
            #expect(!dump.contains(FakeDaraja.payerFirstName) && !dump.contains(FakeDaraja.payerLastName), "a payer's name is in clear in the backup")
            #expect(dump.contains("sealed:v1:"))
        }
    }

    /// Confirmations posted by someone holding the callback token: a receipt M-Pesa never issued,
    /// a real receipt with another amount, a receipt paid to another paybill, a receipt M-Pesa
    /// calls failed, and one naming another shortcode outright. None credits anything; each leaves
    /// one review row, however often its confirmation and its answer come.
    @Test func forgedConfirmationsCreditNothingAndEachLeavesOneReviewRow() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Otieno", pin: TypedPINs.otieno)
            rig.fake.knowPaybill("REALAMT001", shillings: 100)
            rig.fake.knowPaybill("OTHERSC001", shillings: 300, shortcode: "600111")
            rig.fake.knowPaybill("FAILED0001", shillings: 200, status: "Failed")
            let forged = [("FORGED0001", "5000"), ("REALAMT001", "1000"), ("OTHERSC001", "300"), ("FAILED0001", "200")]
            for (transID, amount) in forged {
                #expect(try await rig.fake.forgeConfirmation(transID: transID, account: local, amount: amount, http: rig.http), "acknowledged: \(transID)")
                #expect(try await rig.fake.forgeConfirmation(transID: transID, account: local, amount: amount, http: rig.http))
            }
            #expect(try await rig.fake.forgeConfirmation(transID: "ELSEWHERE1", account: local, amount: "400", shortcode: "600000", http: rig.http))
            _ = try await rig.request(Self.statusPath, count: forged.count)
            #expect(try await rig.answerStatusQueries() == forged.count)
            #expect(try await rig.answerStatusQueries(again: true) == forged.count)

            #expect(try await rig.balance(msisdn) == 0)
            let credited = try await rig.harness.postgres.query("SELECT count(*) FROM deposits WHERE idempotency_key LIKE 'c2b:%'").single()!
            #expect(try credited.decode(Int.self, column: 0) == 0, "nothing credited")
            let moved = try await rig.harness.postgres.query("SELECT count(*) FROM transfers WHERE id LIKE 'c2b:%'").single()!
            #expect(try moved.decode(Int.self, column: 0) == 0, "nothing moved to suspense either")
            let says = try await rig.harness.book.reviewItems().reduce(into: [String: String]()) { $0[$1.reference, default: ""] += $1.newResult ?? "" }
            for (transID, _) in forged + [("ELSEWHERE1", "400")] {
                #expect(try await Self.review(rig, transID) == [ReviewItem.conflict], "one review row for \(transID)")
            }
            for (transID, _) in forged { #expect(try await Self.state(rig, transID) == "refused", "\(transID)") }
            #expect(says["FORGED0001"]?.contains("does not confirm receipt FORGED0001") == true, "\(says)")
            #expect(says["REALAMT001"]?.contains("KES 100.00 was paid, not KES 1000.00") == true, "\(says)")
            #expect(says["OTHERSC001"]?.contains("paid to 600111") == true, "\(says)")
            #expect(says["FAILED0001"]?.contains("Safaricom says failed") == true, "\(says)")
            #expect(says["ELSEWHERE1"]?.contains("shortcode 600000") == true, "\(says)")
            #expect(try await Self.state(rig, "ELSEWHERE1") == nil, "another paybill's confirmation is not even recorded")
        }
    }

    /// An attacker holding the callback token answers the gateway's query themselves: with made-up
    /// ids, and with the query's own id (say it leaked) but a made-up ConversationID. Neither
    /// confirms the forged payment; Safaricom's own answer then refuses it.
    @Test func aForgedTransactionStatusAnswerConfirmsNothing() async throws {
        try await Self.withPaybill { rig, port in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Kerubo", pin: TypedPINs.achieng)
            #expect(try await rig.fake.forgeConfirmation(transID: "FORGED0002", account: local, amount: "500", http: rig.http))
            let queryID = try #require(try await rig.request(Self.statusPath).json["OriginatorConversationID"]?.string)
            func answer(_ originator: String, _ conversation: String) -> String {
                FakeDaraja.result(
                    originator, conversation: conversation, code: "0", description: "The service request is processed successfully.", transactionID: "FORGED0002",
                    parameters: [
                        ("CreditPartyName", quotedJSON(FakeDaraja.shortcode + " - Merchant")), ("DebitPartyName", quotedJSON(msisdn.value + " - Kerubo")),
                        ("TransactionStatus", quotedJSON("Completed")), ("Amount", quotedJSON("500")), ("ReceiptNo", quotedJSON("FORGED0002")),
                    ]
                )
            }
            let result = "http://127.0.0.1:\(port)/mpesa/b2c/result"
            try await rig.acknowledgedQuery(queryID)
            try await rig.fake.post(answer("TS" + String(repeating: "7", count: 32), "AG_20251106_made_up"), to: result, http: rig.http)
            try await rig.fake.post(answer(queryID, "AG_20251106_made_up"), to: result, http: rig.http)
            try await rig.fake.post(answer(queryID, "AG_20251106_made_up"), to: result, http: rig.http)
            #expect(try await rig.balance(msisdn) == 0, "a forged answer confirms nothing")
            #expect(try await Self.state(rig, "FORGED0002") == "verifying")
            #expect(try await rig.reviews(queryID) == ["b2c_result status answer naming another ConversationID than its query's acknowledgement: not trusted"])

            // Safaricom's own answer: it knows no such receipt.
            try await rig.answerStatusQueries()
            #expect(try await rig.balance(msisdn) == 0)
            #expect(try await Self.state(rig, "FORGED0002") == "refused")
            #expect(try await Self.review(rig, "FORGED0002") == [ReviewItem.conflict])
        }
    }

    /// Confirmed payments the wallet must not take: above `MPESA_C2B_MAX_AMOUNT`, above the
    /// customer's tier's maximum balance, and for an account that names nobody. Each goes from the
    /// float to the suspense account, with one review row; no wallet moves.
    @Test func aConfirmedPaymentOverTheLimitsLandsInSuspense() async throws {
        try await Self.withPaybill({ $0.mpesa.c2bMaxAmount = 1_000 }) { rig, _ in
            let (big, capped) = (freshLocal(), freshLocal())
            let bigMSISDN = try await rig.harness.customer(big, name: "Mwangi", pin: TypedPINs.achieng)
            let cappedMSISDN = try await rig.harness.customer(capped, name: "Akinyi", pin: TypedPINs.otieno, shillings: 300)
            let tier = "mini_" + capped.suffix(6)
            try await rig.harness.postgres.query("INSERT INTO kyc_tiers (name, per_transaction, daily, max_balance) VALUES (\(tier), 100000, 100000, 50000)")
            try await rig.harness.postgres.query("UPDATE customers SET tier = \(tier) WHERE msisdn = \(cappedMSISDN.value)")
            // Validation would refuse these; it is off, or timed out with ResponseType Completed.
            let over = try await rig.fake.payBill(account: big, amount: "1500", validation: false, http: rig.http)
            let full = try await rig.fake.payBill(account: capped, amount: "250", validation: false, http: rig.http)
            let nobody = try await rig.fake.payBill(account: "0799 000 111", amount: "420", validation: false, http: rig.http)
            _ = try await rig.request(Self.statusPath, count: 3)
            try await rig.answerStatusQueries()
            try await rig.answerStatusQueries(again: true)

            #expect(try await rig.balance(bigMSISDN) == 0)
            #expect(try await rig.harness.wallet.balances(cappedMSISDN).main == .shillings(300))
            let suspense = try await rig.harness.postgres.query(
                "SELECT b.balance FROM account_balances b JOIN accounts a ON a.id = b.id WHERE a.customer_id IS NULL AND a.kind = 'suspense'"
            ).single()!.decode(Int64.self, column: 0)
            #expect(suspense == 217_000, "1,500 + 250 + 420 shillings in suspense")
            for (payment, reason) in [(over, "over the paybill maximum of KES 1000"), (full, "maximum balance of KES 500"), (nobody, "names no customer")] {
                let kept = try await Self.review(rig, payment.transID)
                #expect(kept.count == 1 && kept[0].hasPrefix("paybill payment in suspense: ") && kept[0].contains(reason), "\(kept)")
                #expect(try await Self.state(rig, payment.transID) == "suspense")
                let transfer = try #require(try await rig.harness.postgres.query(
                    "SELECT metadata->>'cause', kind FROM transfers WHERE id = \("c2b:" + payment.transID)"
                ).single()).decode((String, String).self)
                #expect(transfer == ("c2b:" + payment.transID, "deposit"))
            }
            let kept = try await rig.harness.postgres.query("SELECT body->>'BillRefNumber' FROM mpesa_review WHERE reference = \(nobody.transID)").single()
            let account = try #require(try kept?.decode(String.self, column: 0))
            #expect(account.hasPrefix("sealed:v1:"), "the account typed is a number: sealed like the payer's")
            #expect(try await rig.harness.book.openName(account, reference: nobody.transID, key: "BillRefNumber") == "0799 000 111", "the payment is kept whole")
            #expect(try await rig.outbox(bigMSISDN, "deposit_received") == 0)
        }
    }

    /// Safaricom may give a status query an OriginatorConversationID of its own instead of echoing
    /// ours: its answer, naming that id and the acknowledged ConversationID, counts; a forged one
    /// naming that id with another ConversationID does not.
    @Test func anAnswerUnderSafaricomsOwnQueryIDCountsWithItsConversationID() async throws {
        try await Self.withPaybill { rig, port in
            rig.fake.state.withLock { $0.ownStatusOriginators = true }
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Kiprop", pin: TypedPINs.achieng)
            let paid = try await rig.fake.payBill(account: local, amount: "410", validation: false, http: rig.http)
            _ = try await rig.request(Self.statusPath)
            let query = try #require(rig.fake.statusQueries.first)
            #expect(query.queryID.hasPrefix("29115-"))
            // A forgery under Safaricom's id with a made-up ConversationID confirms nothing.
            let forged = query.answer.replacingOccurrences(of: query.conversationID, with: "AG_20260101_forged0000000")
            let response = try await rig.http.execute(
                CurlRequest(method: "POST", url: "http://127.0.0.1:\(port)/mpesa/b2c/result", headers: [("Content-Type", "application/json")], body: Array(forged.utf8)))
            #expect(response.status == 200)
            #expect(try await rig.balance(msisdn) == 0)
            // The gateway kept Safaricom's id with the query's acknowledgement; then the real answer comes.
            let kept = try await eventually(within: .seconds(30)) {
                try await rig.harness.postgres.query(
                    "SELECT 1 FROM mpesa_status_queries WHERE acknowledged_originator = \(query.queryID) AND conversation_id = \(query.conversationID)"
                ).first != nil
            }
            #expect(kept)
            #expect(try await rig.fake.deliverStatusAnswers(http: rig.http) == 1)
            #expect(try await rig.balance(msisdn) == 41_000)
            #expect(try await Self.state(rig, paid.transID) == "credited")
        }
    }

    /// Safaricom announces a payment made through our own STK push as a paybill payment too,
    /// naming the push's AccountReference. The STK deposit is credited once by its own callback,
    /// whichever comes first; nothing goes to suspense. One naming that account that no STK push
    /// credits (a payer who typed it) goes to review after the window, credited by nobody.
    @Test func anSTKPaymentAnnouncedAsAPaybillPaymentIsCreditedOnceByItsDeposit() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Chebet", pin: TypedPINs.achieng)
            let stk = try await rig.fake.payBill(account: MPesaBook.stkAccountReference, amount: "300", validation: false, http: rig.http)
            _ = try await rig.request(Self.statusPath)
            #expect(try await rig.answerStatusQueries() == 1)
            #expect(try await Self.state(rig, stk.transID) == "stk")
            #expect(try await Self.review(rig, stk.transID).isEmpty)
            // The STK callback comes after: its deposit is credited, once; nothing was parked.
            let deposit = try await rig.harness.book.beginDeposit(msisdn, amount: .shillings(300), key: IdempotencyKey("stk-" + local)!)
            try await rig.harness.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_stk_" + local)
            try await rig.harness.book.completeDeposit(checkoutRequestID: "ws_CO_stk_" + local, receipt: stk.transID, amount: .shillings(300), phone: msisdn)
            #expect(try await rig.balance(msisdn) == 30_000)
            let suspense = try await rig.harness.postgres.query(
                "SELECT b.balance FROM account_balances b JOIN accounts a ON a.id = b.id WHERE a.customer_id IS NULL AND a.kind = 'suspense'"
            ).single()!.decode(Int64.self, column: 0)
            #expect(suspense == 0)

            // A payer who typed the word: confirmed by Safaricom, credited by no STK push.
            let typed = try await rig.fake.payBill(account: MPesaBook.stkAccountReference, amount: "120", validation: false, http: rig.http)
            _ = try await rig.request(Self.statusPath, count: 2)
            #expect(try await rig.answerStatusQueries() >= 1)
            #expect(try await Self.state(rig, typed.transID) == "stk")
            let late = try await rig.replica(ahead: .seconds(61 * 60)).reconcile()
            #expect(late.contains { $0.contains(typed.transID) }, "\(late)")
            let kept = try await Self.review(rig, typed.transID)
            #expect(kept.count == 1 && kept[0].contains("STK account reference that no STK deposit credited"), "\(kept)")
            #expect(try await Self.review(rig, stk.transID).isEmpty, "the one its deposit took is not reported")
            #expect(try await rig.balance(msisdn) == 30_000)
        }
    }

    /// Safaricom never answers: the query is asked again with back-off by the reconciler (time
    /// passed in through its clock), and after `MPESA_C2B_REVIEW_AFTER_MINUTES` the payment goes to
    /// review, uncredited. A late answer still settles it.
    @Test func anUnansweredQueryIsAskedAgainThenGoesToReviewInTime() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Njoroge", pin: TypedPINs.achieng)
            let paid = try await rig.fake.payBill(account: local, amount: "640", http: rig.http)
            try await rig.acknowledgedQuery(try #require(try await rig.request(Self.statusPath).json["OriginatorConversationID"]?.string))
            #expect(try await rig.replica().reconcile().isEmpty, "not due yet")
            let later = try await rig.replica(ahead: .seconds(120)).reconcile()
            #expect(later == ["paybill \(paid.transID): transaction status asked"], "\(later)")
            let queries = rig.fake.requests(Self.statusPath).compactMap { $0.json["OriginatorConversationID"]?.string }
            #expect(queries.count == 2 && queries[0] != queries[1], "each query has its own random id")
            #expect(try await rig.replica(ahead: .seconds(150)).reconcile().isEmpty, "backing off")
            let late = try await rig.replica(ahead: .seconds(61 * 60)).reconcile()
            #expect(late.contains("paybill \(paid.transID): not confirmed by Safaricom, nothing credited: needs review"), "\(late)")
            #expect(try await rig.replica(ahead: .seconds(120 * 60)).reconcile().isEmpty, "reported once, no longer asked")
            #expect(try await Self.review(rig, paid.transID).first?.contains("within 60 minutes") == true)
            #expect(try await rig.balance(msisdn) == 0)
            // Safaricom's answers come after all: the payment is credited, once.
            #expect(try await rig.answerStatusQueries() == 2)
            #expect(try await rig.balance(msisdn) == 64_000)
            #expect(try await Self.state(rig, paid.transID) == "credited")
        }
    }

    /// The paybill routes serve without the rest of the M-Pesa settings; then nobody can ask
    /// Transaction Status, so a confirmation credits nothing and waits for a person at once.
    @Test func withoutMPesaSettingsAConfirmationWaitsForAPerson() async throws {
        try await Self.withPaybill({ $0.mpesa.passkey = nil }) { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Wekesa", pin: TypedPINs.otieno)
            let paid = try await rig.fake.payBill(account: local, amount: "300", validation: false, http: rig.http)
            #expect(paid.confirmed == true)
            _ = try await rig.fake.payBill(account: local, amount: "300", validation: false, transID: paid.transID, http: rig.http)
            #expect(try await rig.balance(msisdn) == 0)
            #expect(try await Self.state(rig, paid.transID) == "unverified")
            let kept = try await Self.review(rig, paid.transID)
            #expect(kept.count == 1 && kept[0].contains("M-Pesa is not configured"), "\(kept)")
            #expect(rig.fake.requests(Self.statusPath).isEmpty)
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

    @Test func theAmountCreditedIsWhatSafaricomConfirmsNotWhatWasValidated() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            let msisdn = try await rig.harness.customer(local, name: "Atieno", pin: TypedPINs.achieng)
            let validated = try await rig.fake.payBill(account: local, amount: "200", confirm: false, http: rig.http)
            #expect(validated.validation == "0")
            let confirmed = try await rig.fake.payBill(account: local, amount: "250", validation: false, transID: validated.transID, http: rig.http)
            #expect(confirmed.confirmed == true)
            _ = try await rig.request(Self.statusPath)
            try await rig.answerStatusQueries()
            #expect(try await rig.balance(msisdn) == 25_000, "the money that moved is what M-Pesa confirmed")
            #expect(try await Self.review(rig, validated.transID).isEmpty)
        }
    }

    @Test func theReconcilerReportsAnAcceptedValidationWhoseConfirmationNeverCameOnce() async throws {
        try await Self.withPaybill { rig, _ in
            let local = freshLocal()
            _ = try await rig.harness.customer(local, name: "Chege", pin: TypedPINs.achieng)
            let accepted = try await rig.fake.payBill(account: local, amount: "300", confirm: false, http: rig.http)
            let confirmedLater = try await rig.fake.payBill(account: local, amount: "150", confirm: false, http: rig.http)
            _ = try await rig.fake.payBill(account: local, amount: "150", validation: false, transID: confirmedLater.transID, http: rig.http)
            // The gateway's own query first: each replica below takes a token of its own, which
            // ends the one before (as Daraja's do).
            try await rig.acknowledgedQuery(try #require(try await rig.request(Self.statusPath).json["OriginatorConversationID"]?.string))
            func unconfirmed(_ lines: [String]) -> [String] { lines.filter { $0.contains("never confirmed") } }
            #expect(try await unconfirmed(rig.replica().reconcile()).isEmpty, "not yet: the confirmation may still come")
            #expect(
                try await unconfirmed(rig.replica(ahead: .seconds(11 * 60)).reconcile()) == [
                    "paybill \(accepted.transID): accepted, never confirmed: needs review"
                ])
            #expect(try await unconfirmed(rig.replica(ahead: .seconds(12 * 60)).reconcile()).isEmpty, "reported once")
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
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus,
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

