import Wallet
import Foundation
import Postgres

/// Why a deposit was not paid, in the words the SMS templates use (`params.reason`).
public enum DepositFailure: String, Sendable, CaseIterable {
    case cancelled
    case timeout
    case wrongPIN = "wrong_pin"
    case insufficientFunds = "insufficient_funds"
    case limit
    /// Daraja refused the push itself; the customer saw no prompt.
    case notSent = "not_sent"
    case other

    /// Our code for a push Daraja refused: it never reached the customer.
    public static let notSentCode = -1
    /// Our code for a push whose answer never came (no CheckoutRequestID within the matching window).
    public static let unconfirmedCode = -2

    /// From an STK ResultCode (reference: docs/reference/daraja.md).
    public init(code: Int) {
        switch code {
        case 1032: self = .cancelled
        case 1037, 1019: self = .timeout
        case 2001: self = .wrongPIN
        case 1: self = .insufficientFunds
        case 2, 3, 4, 8, 17: self = .limit
        case Self.notSentCode, Self.unconfirmedCode: self = .notSent
        default: self = .other
        }
    }
}
