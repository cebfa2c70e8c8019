import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

/// The wallet's side of issue 26: a paybill confirmation is recorded and moves nothing; only
/// `creditVerifiedPaybill` (a Transaction Status answer that confirmed it) moves money, once, however
/// many answers arrive at once; status queries and B2C acknowledgements keep their ids.
@Suite struct PaybillVerificationTests {
    @Test func aConfirmationMovesNothingAndManyConcurrentAnswersCreditOnce() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 0, name: "Achieng")
        let recorded = try await ledger.book.recordPaybillConfirmation(
            transID: "RKTQDM7W6S", billRef: "0712 345 678", shortcode: "174379", msisdn: achieng, amount: .shillings(300), raw: #"{"TransID":"RKTQDM7W6S"}"#
        )
        #expect(recorded == .recorded)
        #expect(try await ledger.wallet.balances(achieng).main == .zero, "a confirmation is a claim")
        let again = try await ledger.book.recordPaybillConfirmation(
            transID: "RKTQDM7W6S", billRef: "0712345678", shortcode: "174379", msisdn: achieng, amount: .shillings(300), raw: "{}"
        )
        #expect(again == .repeated(state: "verifying"))
        // A repeat naming another amount is a conflict for a person, kept once.
        for _ in 0..<2 {
            _ = try await ledger.book.recordPaybillConfirmation(
                transID: "RKTQDM7W6S", billRef: "0712345678", shortcode: "174379", msisdn: achieng, amount: .shillings(3_000), raw: "{}"
            )
        }
        #expect(try await ledger.book.reviewItems().map(\.reason) == [ReviewItem.conflict])
        #expect(try await ledger.book.paybillPayment(transID: "RKTQDM7W6S")?.amount == .shillings(300), "the first confirmation stands")

        // Eight answers at once: one credit.
        let outcomes = try await withThrowingTaskGroup(of: MPesaBook.PaybillSettlement.self) { group in
            for _ in 0..<8 { group.addTask { try await ledger.book.creditVerifiedPaybill(transID: "RKTQDM7W6S", maximum: .shillings(150_000), answer: "{}") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { if case .credited = $0 { return true } else { return false } }.count == 1, "\(outcomes)")
        #expect(outcomes.filter { $0 == .alreadySettled(state: "credited") }.count == 7)
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(300))
        let transfer = try await ledger.postgres.query(
            "SELECT t.id, t.metadata->>'cause', t.metadata->>'receipt' FROM transfers t JOIN deposits d ON d.transfer_id = t.id WHERE d.idempotency_key = 'c2b:RKTQDM7W6S'"
        ).single()!.decode((String, String, String).self)
        #expect(transfer.0.hasPrefix("deposit:") && transfer.1 == "c2b:RKTQDM7W6S" && transfer.2 == "RKTQDM7W6S")
        let receipts = try await ledger.postgres.query("SELECT count(*) FROM outbox WHERE template = 'deposit_received'").single()!.decode(Int.self, column: 0)
        #expect(receipts == 1)
        // Settled: a refusal or another answer changes nothing.
        #expect(try await !ledger.book.refusePaybill(transID: "RKTQDM7W6S", confirmation: "c", says: "s"))
        #expect(try await ledger.book.creditVerifiedPaybill(transID: "NEVERSEEN1", maximum: .shillings(150_000), answer: "{}") == .unknown)
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aStatusQueryKeepsItsAcknowledgementAndFirstAnswerAndIsNeverDeleted() async throws {
        let ledger = try await Ledger.make()
        let id = "TS" + String(repeating: "a", count: 32)
        try await ledger.book.recordStatusQuery(id: id, subject: .c2b, reference: "RKTQDM7W6S")
        #expect(try await ledger.book.statusQuery(id: id)?.isAnswered(by: id, conversation: "") == false, "not acknowledged: nothing answers it")
        #expect(try await ledger.book.acknowledgeStatusQuery(id: id, conversationID: "AG_1"))
        #expect(try await !ledger.book.acknowledgeStatusQuery(id: id, conversationID: "AG_2"), "written once")
        let query = try #require(try await ledger.book.statusQuery(id: id))
        #expect(query.conversationID == "AG_1" && query.isAnswered(by: id, conversation: "AG_1") && !query.isAnswered(by: id, conversation: "AG_2"))
        #expect(try await ledger.book.recordStatusAnswer(id: id, raw: #"{"first":1}"#))
        #expect(try await !ledger.book.recordStatusAnswer(id: id, raw: #"{"second":2}"#))
        for statement: PostgresQuery in [
            "UPDATE mpesa_status_queries SET conversation_id = 'AG_forged' WHERE id = \(id)",
            "UPDATE mpesa_status_queries SET answer = '{}' WHERE id = \(id)",
            "DELETE FROM mpesa_status_queries WHERE id = \(id)",
        ] {
            await #expect(throws: PostgresError.self) { try await ledger.postgres.query(statement) }
        }

        // A payout's acknowledged ConversationID stays too.
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let payout = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(100), key: key("p-ack"))
        try await ledger.book.markWithdrawalSent(payout.id, conversationID: "AG_B2C_1", originatorConversationID: payout.id)
        try await ledger.book.markWithdrawalSent(payout.id, conversationID: "AG_B2C_2", originatorConversationID: payout.id)
        let acknowledged = try #require(try await ledger.book.payoutAcknowledgement(originator: payout.id))
        #expect(acknowledged.conversationID == "AG_B2C_1" && acknowledged.isNamed(by: "AG_B2C_1") && !acknowledged.isNamed(by: "AG_B2C_2"))
        await #expect(throws: PostgresError.self) { try await ledger.postgres.query("UPDATE payouts SET conversation_id = 'AG_forged' WHERE id = \(payout.id)") }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}
