import Basics
import Wallet

/// Deposits and withdrawals through a mobile-money provider, in the provider's own terms; the
/// action table words them for the menus.
public protocol MobileMoneyChannel: Sendable {
    /// Begins a deposit of `amount` to the customer's wallet (a payment prompt follows the reply).
    func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome
    /// Holds `amount` and pays it out to the customer's phone; `fee` (the tariff's) goes to fee
    /// income with the hold, and back to the customer if the payout fails.
    func withdraw(_ msisdn: MSISDN, amount: Amount, fee: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome
}
