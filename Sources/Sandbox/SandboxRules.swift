/// The embedded sandbox's outcome rules: the last digit of an amount in whole shillings chooses
/// what the simulated customer and Safaricom do, so every path a live deployment meets can be
/// tried from a phone. README.md's table documents the same rules; ``table`` is that table.
public enum SandboxRules {
    /// What happens to an STK push (a deposit).
    public enum STKOutcome: String, Sendable, CaseIterable {
        /// The customer approves after the sandbox's delay; the callback says paid.
        case approved
        /// The customer cancels the prompt: callback ResultCode 1032.
        case cancelled
        /// The customer's M-Pesa balance is too low: callback ResultCode 1.
        case insufficientFunds
        /// The phone cannot be reached: callback ResultCode 1037.
        case unreachable
        /// Paid, but the callback never arrives: the reconciler's STK Query settles it.
        case callbackLost
        /// Paid, and the callback arrives twice: the wallet credits once.
        case callbackTwice

        /// The callback's ResultCode and ResultDesc, as Safaricom words them.
        public var result: (code: Int, description: String) {
            switch self {
            case .approved, .callbackLost, .callbackTwice: return (0, "The service request is processed successfully.")
            case .cancelled: return (1032, "Request cancelled by user")
            case .insufficientFunds: return (1, "The balance is insufficient for the transaction.")
            case .unreachable: return (1037, "DS timeout user cannot be reached")
            }
        }

        public var paid: Bool { self.result.code == 0 }
    }

    /// What happens to a B2C payment (a withdrawal).
    public enum B2COutcome: String, Sendable, CaseIterable {
        /// Paid after the sandbox's delay; the result says so.
        case paid
        /// Refused: the receiver is not a registered M-Pesa customer (ResultCode 2040); the hold is released.
        case unregisteredReceiver
        /// Paid, but only a timeout reaches QueueTimeOutURL: the reconciler's transaction status query settles it.
        case timedOut
        /// Paid, and the result arrives twice: the wallet pays out once.
        case resultTwice

        public var paid: Bool { self != .unregisteredReceiver }
    }

    /// The outcome of an STK push of `shillings`.
    public static func stk(shillings: Int) -> STKOutcome {
        switch shillings % 10 {
        case 1: return .cancelled
        case 2: return .insufficientFunds
        case 3: return .unreachable
        case 7: return .callbackLost
        case 8: return .callbackTwice
        default: return .approved
        }
    }

    /// The outcome of a B2C payment of `shillings`.
    public static func b2c(shillings: Int) -> B2COutcome {
        switch shillings % 10 {
        case 1: return .unregisteredReceiver
        case 7: return .timedOut
        case 8: return .resultTwice
        default: return .paid
        }
    }

    /// The rules as (amount ends in, deposit, withdrawal) rows, for the simulator page and the docs.
    public static let table: [(endsIn: String, deposit: String, withdrawal: String)] = [
        ("any other digit", "approved after a short delay: credited, SMS receipt", "paid after a short delay: SMS receipt"),
        ("1", "cancelled by the customer (1032): nothing credited", "refused, receiver not registered (2040): the hold is released"),
        ("2", "customer's M-Pesa balance too low (1): nothing credited", "paid"),
        ("3", "phone unreachable (1037): nothing credited", "paid"),
        ("7", "paid, but no callback: the reconciler's STK Query credits it (about a minute)", "timeout callback: the reconciler's status query settles it as paid (about a minute)"),
        ("8", "paid, callback sent twice: credited once", "paid, result sent twice: paid once"),
    ]
}
