import Wallet
import Foundation
import Postgres

/// Why a provider callback could not be applied.
public enum ProviderRecordError: Error, Sendable, Hashable {
    case unknownDeposit
    case unknownPayout
    /// The callback's amount or phone differs from what was asked: nothing credited, flagged.
    case mismatch
    /// A final result contradicting an earlier final one (paid after refunded, a payment for a
    /// deposit already failed or credited under another receipt): kept for a human, nothing moved.
    /// `current` says what was known before.
    case conflict(current: String)
    /// Matched to a payment by phone and amount, and not yet confirmed by an STK Query.
    case awaitingQuery
    /// A row holds a value the schema does not allow.
    case corrupt(String)
}
