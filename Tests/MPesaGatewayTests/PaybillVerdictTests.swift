import Basics
import MPesa
import MPesaBook
@testable import MPesaGateway
import Testing
import Wallet

/// The decision on a paybill confirmation from Safaricom's Transaction Status answer, without a
/// database: only Completed with the same receipt, amount and paybill confirms it.
@Suite struct PaybillVerdictTests {
    static let payment = MPesaBook.PaybillPayment(transID: "RKTQDM7W6S", amount: .shillings(750), shortcode: "174379", state: "verifying")

    static func verdict(code: String = "0", _ parameters: [(String, String)]) throws -> PaybillVerdict {
        // A Transaction Status answer as Daraja posts it to the result URL.
        let items = parameters.map { #"{"Key":"\#($0.0)","Value":\#($0.1)}"# }.joined(separator: ",")
        let body = #"{"Result":{"ResultType":0,"ResultCode":\#(code),"ResultDesc":"d","OriginatorConversationID":"TS1","ConversationID":"AG_1","TransactionID":"RKTQDM7W6S""#
            + (parameters.isEmpty ? "" : #","ResultParameters":{"ResultParameter":[\#(items)]}"#) + "}}"
        let result = try B2CResult(json: Array(body.utf8))
        return PaybillVerdict.decide(result, result.succeeded ? try TransactionStatusAnswer(result) : nil, payment: Self.payment, paybill: "174379")
    }

    static func completed(receipt: String = "RKTQDM7W6S", amount: String = "750", party: String = "174379 - Wallet Ltd", status: String = "Completed") -> [(String, String)] {
        [("ReceiptNo", quotedJSON(receipt)), ("Amount", quotedJSON(amount)), ("CreditPartyName", quotedJSON(party)), ("TransactionStatus", quotedJSON(status))]
    }

    @Test func onlyCompletedWithTheSameReceiptAmountAndPaybillConfirms() throws {
        #expect(try Self.verdict(Self.completed()) == .confirmed)
        #expect(try Self.verdict(Self.completed(amount: "750.00")) == .confirmed)
        for (parameters, says) in [
            (Self.completed(receipt: "RKTQDM7W6T"), "receipt RKTQDM7W6T"), (Self.completed(amount: "7500"), "KES 7500.00 was paid"),
            (Self.completed(party: "600000 - Another"), "paid to 600000"), (Self.completed(status: "Failed"), "says failed"),
            (Self.completed(status: "Reversed"), "says reversed"), (Array(Self.completed().dropFirst(1)), "receipt none"),
            (Array(Self.completed().dropLast()), "no TransactionStatus"), (Self.completed().filter { $0.0 != "Amount" }, "(none) was paid"),
            (Self.completed().filter { $0.0 != "CreditPartyName" }, "(no party)"),
        ] {
            guard case .refused(let why) = try Self.verdict(parameters) else { Issue.record("\(says): not refused"); continue }
            #expect(why.contains(says), "\(why)")
        }
    }

    @Test func unknownReceiptsAreRefusedAndUnfinishedOnesWait() throws {
        guard case .refused(let why) = try Self.verdict(code: #""R000001""#, []) else { Issue.record("an unknown receipt must be refused"); return }
        #expect(why.contains("does not confirm receipt RKTQDM7W6S (R000001"))
        if case .refused = try Self.verdict(code: "2032", []) {} else { Issue.record("a non-zero code must be refused") }
        #expect(try Self.verdict(code: "2001", []) == .undecided("our Transaction Status query was refused (2001 d)"), "our initiator, not the payment")
        #expect(try Self.verdict(Self.completed(status: "Pending Authorized")) == .undecided("Safaricom says pending authorized"))
    }
}

/// `text` as a JSON string literal.
private func quotedJSON(_ text: String) -> String {
    JSONValue.string(text).serialized
}
