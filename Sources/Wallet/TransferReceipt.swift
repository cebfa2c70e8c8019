import Foundation
import Postgres

/// What a posted movement returns; the same key asked again returns the same receipt.
public struct TransferReceipt: Sendable, Hashable {
    public let key: String
    public let kind: String
    public let amount: Amount
    /// The fee charged with it (to the fee-income account, in the same transaction).
    public let fee: Amount
    public let createdAt: Date
    /// The initiating customer's balances after this movement (now, for a replayed key).
    public let balances: Wallet.Balances
}
