import Basics
import MPesa

/// Safaricom's callbacks: the STK callback, the B2C result envelope that result, timeout and
/// transaction-status answers share (with its receipt and status accessors, and the
/// `TransactionStatusAnswer` read from it), and the paybill's (C2B) validation and confirmation body. What a decoder accepts
/// must be storable: an amount in range or none, and a body the database's JSON parser takes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let callback = try? STKCallback(json: bytes) {
        if let shillings = callback.paid?.shillings {
            precondition(STKCallback.shillingRange.contains(shillings), "an amount outside the documented range")
            precondition(shillings.multipliedReportingOverflow(by: 100).overflow == false, "cents overflow")
        }
        precondition(callback.checkoutRequestID.utf8.count <= 64, "an unbounded id")
        precondition(callback.resultCode >= 0 || callback.outOfRange != nil, "a result code outside its column, not flagged")
        precondition(JSONValue.parse(Array(callback.raw.utf8)) != nil, "a stored body that is not JSON")
        precondition(!callback.raw.utf8.contains(0), "NUL in a stored body")
    }
    if let result = try? B2CResult(json: bytes) {
        _ = try? result.receipt
        _ = try? result.transactionStatus
        precondition(result.originatorConversationID.utf8.count <= 128, "an unbounded id")
        precondition(Int32(exactly: result.resultCode) != nil && (result.resultCode >= 0 || result.outOfRange != nil), "a result code outside its column, not flagged")
        precondition(JSONValue.parse(Array(result.raw.utf8)) != nil, "a stored body that is not JSON")
        precondition(result.resultCodeName == nil || (result.resultCode == -1 && result.outOfRange == "ResultCode"), "a named result code taken as a number")
        precondition(!result.succeeded || result.resultCode == 0, "success without ResultCode 0")
        // An Account Balance answer (the float): accounts bounded, amounts in cents that fit.
        if let accounts = try? AccountBalance.accounts(result.parameters["AccountBalance"]) {
            precondition((1...16).contains(accounts.count), "an unbounded list of accounts")
            for account in accounts {
                precondition((1...64).contains(account.name.utf8.count) && account.currency.utf8.count == 3, "an account outside its columns")
                precondition(abs(account.cents) < 10_000_000_000_000_00, "an amount outside its range")
            }
        }
        _ = AccountBalance.completedTime(result.parameters["BOCompletedTime"])
        if let answer = try? TransactionStatusAnswer(result) {
            if let cents = answer.cents { precondition(cents > 0 && cents <= 100_000_000_000, "an amount outside its range") }
            for party in [answer.creditParty, answer.debitParty].compactMap({ $0 }) {
                precondition((5...15).contains(party.utf8.count) && party.utf8.allSatisfy { (48...57).contains($0) }, "a party that is not 5 to 15 digits")
            }
            if let status = answer.status { precondition(status == status.lowercased() && status.utf8.count <= 32, "an unbounded status") }
            if let receipt = answer.receipt { precondition((1...32).contains(receipt.utf8.count), "an unbounded receipt") }
        }
    }
    if let payment = try? C2BPayment(body: bytes) {
        let idBytes = Array(payment.transID.utf8)
        let upperAlphanumeric = idBytes.allSatisfy { (byte: UInt8) -> Bool in (65...90).contains(byte) || (48...57).contains(byte) }
        precondition((6...20).contains(idBytes.count) && upperAlphanumeric, "a TransID outside the column's CHECK")
        precondition(payment.cents > 0 && payment.cents <= 100_000_000_000, "an amount outside its range")
        precondition(payment.billRef.utf8.count <= 40, "an account longer than its column")
        precondition(!payment.billRef.utf8.contains(0), "NUL in an account")
    }
    return 0
}
