import Wallet
import Basics
import Foundation
import Postgres

/// A deposit by M-Pesa STK push, as the wallet records it.
public struct Deposit: Sendable, Hashable {
    /// Pending until a payment credits it or a refusal fails it; both are final.
    public enum Status: String, Sendable {
        case pending, completed, failed
    }

    public let id: Int64
    public let key: String
    /// The customer's number; nil once they were erased (a settled deposit holds no number of its
    /// own: migration 0021).
    public let msisdn: MSISDN?
    public let amount: Amount
    public let status: Status
    public let checkoutRequestID: String?
    public let receipt: String?
    /// Set by a completion that credited the deposit just now (the ledger's `credited`, not
    /// `already_completed`): what counts the money once (`wallet_money_total`).
    public var creditedNow = false
}
