import Basics
import Foundation
import Logging
import Postgres
import Wallet

/// M-Pesa's records beside the ledger: STK deposits, B2C payouts, C2B paybill payments, the
/// Transaction Status queries sent about them, the review queue, and the day's reconciliation.
/// Money moves only through the ledger's functions in the database (`wallet_*`); the ledger
/// (`Wallet`) knows nothing of M-Pesa, so a second provider is a book of its own beside this one.
public final class MPesaBook: Sendable {
    public let wallet: Wallet
    let postgres: PostgresClient
    /// Gathers concurrent deposit completions (paid STK callbacks) into shared commits, as the
    /// ledger gathers movements.
    let completions: GroupCommitter<DepositCompletion>

    public init(wallet: Wallet) {
        let postgres = wallet.postgres
        self.wallet = wallet
        self.postgres = postgres
        self.completions = GroupCommitter(
            lanes: wallet.groupCommit.lanes, maximumBatch: wallet.groupCommit.maximumBatch,
            batch: { calls in try await Self.completeDepositBatch(calls, postgres: postgres) },
            single: { call in try await Self.completeDepositOne(call, postgres: postgres) }
        )
    }

    /// A status column read back into its enum; a value the schema's CHECK does not allow is a
    /// corrupt row, never a guess.
    static func status<Status: RawRepresentable>(_ text: String) throws -> Status where Status.RawValue == String {
        guard let status = Status(rawValue: text) else { throw ProviderRecordError.corrupt("status \(text)") }
        return status
    }

    static func deposit(_ row: PostgresRow) throws -> Deposit {
        let (id, key, msisdn, cents, status, checkout, receipt) = try row.decode((Int64, String, String?, Int64, String, String?, String?).self)
        return Deposit(id: id, key: key, msisdn: msisdn.flatMap { MSISDN($0) }, amount: Amount(cents: cents), status: try Self.status(status), checkoutRequestID: checkout, receipt: receipt)
    }
}

/// One call of `wallet_complete_deposit`: a paid STK callback (or query) for one deposit.
struct DepositCompletion: Sendable, Encodable {
    /// CheckoutRequestID.
    let c: String
    /// M-Pesa receipt.
    let r: String?
    let a: Int64
    /// The phone that paid.
    let p: String
    /// The callback as received (JSON text), kept on the deposit.
    let raw: String?
    /// Confirmed by an STK Query.
    let q: Bool
}
