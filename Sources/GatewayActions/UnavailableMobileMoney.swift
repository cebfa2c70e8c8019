import Basics
import Wallet

/// No provider configured: deposits and withdrawals answer "temporarily unavailable" (the menus'
/// `unavailable` screen) and nothing is recorded.
public struct UnavailableMobileMoney: MobileMoneyChannel {
    public init() {}
    public func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome { .unavailable }
    public func withdraw(_ msisdn: MSISDN, amount: Amount, fee: Amount, key: IdempotencyKey) async throws -> MobileMoneyOutcome { .unavailable }
}
