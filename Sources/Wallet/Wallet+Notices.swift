import Basics
import Foundation
import Postgres

/// SMS notices to customers, queued in the outbox; and how provider records are read back.
extension Wallet {
    /// Queues an SMS to a customer, in their language, once per `dedupe` key (e.g. the result of a
    /// USSD action that finished after its session had to end).
    public func queueNotice(_ msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await self.postgres.withConnection { connection in
            try await self.queueSMS(connection, to: msisdn, template: template, params: params, dedupe: dedupe)
        }
    }

    /// Queues an SMS in the caller's transaction, once per `dedupe` key.
    func queueSMS(_ tx: PostgresConnection, to msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await Outbox.queue(tx, notice: template, to: msisdn, params: params, dedupe: dedupe)
    }


    /// A status column read back into its enum; a value the schema's CHECK does not allow is a
    /// corrupt row, never a guess.
    static func status<Status: RawRepresentable>(_ text: String) throws -> Status where Status.RawValue == String {
        guard let status = Status(rawValue: text) else { throw ProviderRecordError.corrupt("status \(text)") }
        return status
    }

    static func deposit(_ row: PostgresRow) throws -> Deposit {
        let (id, key, msisdn, cents, status, checkout, receipt) = try row.decode((Int64, String, String, Int64, String, String?, String?).self)
        return Deposit(id: id, key: key, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: try Self.status(status), checkoutRequestID: checkout, receipt: receipt)
    }
}
