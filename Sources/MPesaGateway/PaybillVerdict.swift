import MPesa
import MPesaBook
import Wallet

/// What Safaricom's Transaction Status answer says of a paybill confirmation. Pure: the decision
/// from the answer and the recorded confirmation, tested without a database.
enum PaybillVerdict: Sendable, Equatable {
    /// Completed, with the confirmation's receipt, amount and paybill: the money may move.
    case confirmed
    /// Safaricom does not know the receipt, or its answer disagrees with the confirmation: nothing
    /// moves, a person looks. Says what the answer said.
    case refused(String)
    /// No decision yet (still pending, or our initiator was refused): asked again later.
    case undecided(String)

    /// Result codes that say our query was refused, not that the payment is unknown: the initiator's
    /// credential is wrong (2001) or locked (8006). The payment is asked about again, and goes to
    /// review if no answer decides it in time.
    static let queryRefusedCodes: Set<Int> = [2001, 8006]

    /// Statuses of a transaction M-Pesa has not finished.
    static let unfinished: Set<String> = ["initiated", "authorized", "pending", "pending authorized", "authorizing", "processing"]

    static func decide(_ result: B2CResult, _ answer: TransactionStatusAnswer?, payment: MPesaBook.PaybillPayment, paybill: String) -> PaybillVerdict {
        let asked = payment.transID
        guard result.succeeded, let answer else {
            if Self.queryRefusedCodes.contains(result.resultCode) {
                return .undecided("our Transaction Status query was refused (\(result.resultCodeText) \(result.resultDescription.prefix(80)))")
            }
            return .refused("Safaricom does not confirm receipt \(asked) (\(result.resultCodeText) \(result.resultDescription.prefix(80)))")
        }
        guard let status = answer.status else { return .refused("Safaricom's answer names no TransactionStatus") }
        if Self.unfinished.contains(status) { return .undecided("Safaricom says \(status)") }
        guard status == "completed" else { return .refused("Safaricom says \(status)") }
        guard answer.receipt == asked else { return .refused("Safaricom's answer names receipt \(answer.receipt ?? "none"), not \(asked)") }
        guard let cents = answer.cents, cents == payment.amount.cents else {
            return .refused("Safaricom says KES \(answer.cents.map { Amount(cents: $0).description } ?? "(none)") was paid, not KES \(payment.amount)")
        }
        guard answer.creditParty == paybill, payment.shortcode == nil || payment.shortcode == paybill else {
            return .refused("Safaricom says it was paid to \(answer.creditParty ?? "(no party)"), not to paybill \(paybill)")
        }
        return .confirmed
    }
}
