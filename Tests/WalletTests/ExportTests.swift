import Basics
import Foundation
@testable import LedgerTestSupport
import MPesaBook
import Postgres
import Testing
import TestSupport
import Wallet

/// A subject access request (issue 31): `customer export` gives everything held about a customer,
/// and nothing about anyone else but masked numbers.
@Suite struct ExportTests {
    let why = try! OperatorAction(reason: "subject access request SAR-12, identity checked")

    @Test func anExportHoldsEveryRecordOfTheCustomerAndNoOneElses() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 50_000, name: "Achieng Wambui")
        let otieno = try await ledger.funded("254722000111", cents: 20_000, name: "Otieno Kipchumba")
        let stranger = try await ledger.funded("254733000222", cents: 10_000, name: "Stranger Muthoni")
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(30), key: IdempotencyKey("a-to-o")!)
        _ = try await ledger.wallet.send(from: otieno, to: achieng, amount: .shillings(12), key: IdempotencyKey("o-to-a")!)
        _ = try await ledger.wallet.send(from: otieno, to: stranger, amount: .shillings(7), key: IdempotencyKey("o-to-s")!)
        let outbox = Outbox(postgres: ledger.postgres, personalData: ledger.wallet.personalData)
        _ = try await outbox.queueOperatorMessage("Achieng, your card is ready", to: achieng)
        _ = try await outbox.queueOperatorMessage("Otieno, your card is ready", to: otieno)
        let payout = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(50), key: IdempotencyKey("w-1")!)
        // Someone pays her paybill account: their name is theirs, not hers.
        let confirmation = #"{"TransID":"SKX1234567","TransAmount":"200.00","BillRefNumber":"0712345678","FirstName":"Payer","MiddleName":"","LastName":"Wekesa-Njoroge"}"#
        _ = try await ledger.book.recordPaybillConfirmation(
            transID: "SKX1234567", billRef: "0712345678", shortcode: "600000", msisdn: achieng, amount: .shillings(200), raw: confirmation)
        // Her payout's result names her (her number and name, as M-Pesa registered them).
        let result = #"{"Result":{"ResultCode":0,"ResultParameters":{"ResultParameter":[{"Key":"ReceiverPartyPublicName","Value":"254712345678 - Achieng Wambui"},{"Key":"TransactionAmount","Value":50}]}}}"#
        _ = try await ledger.book.completeWithdrawal(payout.id, providerTransactionID: "PAYOUTRCPT1", raw: result)
        let stored = try await ledger.postgres.query("SELECT raw_result::text FROM payouts WHERE id = \(payout.id)").single()!.decode(String.self, column: 0)
        #expect(!stored.contains("Achieng") && !stored.contains(achieng.value), "sealed where it is kept: \(stored)")
        _ = try await ledger.wallet.block(achieng, by: self.why)
        _ = try await ledger.wallet.unblock(achieng, by: self.why)

        let exported = try #require(try await ledger.wallet.export(achieng, by: self.why))
        let text = exported.serialized
        // Hers, all of it.
        #expect(exported["profile"]?["name"] == .string("Achieng Wambui") && exported["profile"]?["msisdn"] == .string(achieng.value))
        let transfers = try #require(exported["transfers"]?.arrayValue)
        let ids: Set<String> = Set(transfers.compactMap { $0["id"]?.string })
        #expect(ids.contains("a-to-o") && ids.contains("o-to-a"), "\(transfers)")
        #expect(transfers.contains { $0["kind"]?.string == "deposit" && $0["direction"]?.string == "in" }, "her funding")
        #expect(!transfers.contains { $0["id"]?.string == "o-to-s" }, "a send between two others")
        #expect(exported["payouts"]?.arrayValue?.map { $0["id"]?.string } == [payout.id])
        #expect(text.contains("Achieng, your card is ready"))
        let records = try #require(exported["provider_records"]?.arrayValue)
        let kept = try #require(records.first { $0["kind"]?.string == "payout" }, "\(records)")
        #expect(kept["reference"] == .string(payout.id) && kept["body"]?.serialized.contains("254712345678 - Achieng Wambui") == true, "\(kept)")
        #expect(records.contains { $0["kind"]?.string == "paybill" && $0["reference"]?.string == "SKX1234567" }, "\(records)")
        #expect(exported["audit_trail"]?.arrayValue?.compactMap { $0["action"]?.string }.contains("customer.blocked") == true)
        // Nobody else's: no other name, no other text, no other number but masked.
        let paybill = try #require(exported["paybill_payments"]?.arrayValue?.first)
        #expect(paybill["trans_id"] == .string("SKX1234567") && paybill["payer"]?["LastName"] == .string("[another person]"), "\(paybill)")
        for other in ["Otieno", "Kipchumba", "Stranger", "Muthoni", "Wekesa", otieno.value, stranger.value] {
            #expect(!text.contains(other), "\(other) is in the export")
        }
        #expect(text.contains(otieno.masked), "the counterparty, masked")
        // The export itself is in the trail, with why.
        let trail = try await ledger.wallet.auditTrail(achieng)
        #expect(trail.contains { $0.action == "customer.exported" && $0.reason == self.why.reason })
        #expect(try await ledger.wallet.export(MSISDN("254799888777")!, by: self.why) == nil)
        await ledger.shutdown()
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        guard case .array(let items) = self else { return nil }
        return items
    }
}
