import Wallet

/// Deposits and withdrawals through a mobile-money provider, in the provider's own terms; the
/// action table words them for the menus.
public protocol MobileMoneyChannel: Sendable {
    /// Begins a deposit of `amount` to the customer's wallet (a payment prompt follows the reply).
    func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome
    /// Holds `amount` and pays it out to the customer's phone.
    func withdraw(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome
}

/// What a provider made of a deposit or a withdrawal.
public enum MobileMoneyOutcome: Sendable, Equatable {
    /// The deposit is recorded and its payment prompt is on its way.
    case prompted
    /// The withdrawal is held and on its way; what the customer can still spend.
    case paying(available: Amount)
    /// The amount is outside what the provider moves in one payment.
    case outsideLimits
    /// No provider is configured.
    case unavailable
}

/// No provider configured: deposits and withdrawals answer "temporarily unavailable" (the menus'
/// `unavailable` screen) and nothing is recorded.
public struct UnavailableMobileMoney: MobileMoneyChannel {
    public init() {}
    public func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome { .unavailable }
    public func withdraw(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome { .unavailable }
}
