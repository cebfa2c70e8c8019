import Wallet

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
