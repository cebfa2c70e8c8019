import Wallet
import Foundation
import Postgres

/// Which deposit: by our id, or by the CheckoutRequestID Daraja gave its push.
public enum DepositReference: Sendable, Hashable {
    case id(Int64)
    case checkout(String)
}
