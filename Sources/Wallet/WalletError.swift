import Basics
import Foundation

/// Why a wallet operation was refused. Each case has a stable code that menus.json maps to a
/// screen (`insufficient_funds`, `wrong_pin`, ...); `description` never holds a PIN or a value
/// a user typed.
public enum WalletError: LogSafeError, Sendable, Hashable, CustomStringConvertible {
    case notRegistered
    case alreadyRegistered
    case wrongPIN(attemptsLeft: Int)
    case locked(until: Date)
    /// Every PIN attempt left is being checked right now (concurrent guesses): refused like a lock.
    case tooManyAttempts
    case weakPIN
    /// A PIN-change grant that expired, was used, or was given to another session.
    case tokenExpired
    case insufficientFunds
    case recipientNotRegistered
    case sameAccount
    case limitExceeded
    /// The recipient's KYC tier does not let their balance grow by this much.
    case recipientLimit
    /// An operator blocked the customer: only the balance may be checked.
    case blocked
    /// An operator reset the PIN: the customer must set a new one before anything that asks for it.
    case pinResetRequired
    /// The PIN was reset lately: sends and withdrawals above the cooling-off limit wait until then.
    case coolingOff(until: Date)
    /// The key was used before with different parameters.
    case idempotencyKeyReused
    case invalidArgument(String)

    /// The code menus.json and SMS replies use.
    public var code: String {
        switch self {
        case .notRegistered: return "not_registered"
        case .alreadyRegistered: return "already_registered"
        case .wrongPIN: return "wrong_pin"
        case .locked, .tooManyAttempts: return "locked"
        case .weakPIN: return "weak_pin"
        case .tokenExpired: return "token_expired"
        case .insufficientFunds: return "insufficient_funds"
        case .recipientNotRegistered: return "recipient_not_registered"
        case .sameAccount: return "same_account"
        case .limitExceeded: return "limit_exceeded"
        case .recipientLimit: return "recipient_limit"
        case .blocked: return "blocked"
        case .pinResetRequired: return "pin_reset"
        case .coolingOff: return "cooling_off"
        case .idempotencyKeyReused: return "idempotency_key_reused"
        case .invalidArgument: return "invalid_argument"
        }
    }

    public var description: String {
        switch self {
        case .wrongPIN(let left): return "wrong_pin (\(left) attempts left)"
        case .locked(let until): return "locked until \(until)"
        case .tooManyAttempts: return "locked (every PIN attempt left is being checked)"
        case .coolingOff(let until): return "cooling_off until \(until)"
        case .invalidArgument(let what): return "invalid_argument: \(what)"
        default: return self.code
        }
    }
}
