import Basics
import Foundation
import Postgres

/// SMS notices to customers, queued in the outbox.
extension Wallet {
    /// Queues an SMS to a customer, in their language, once per `dedupe` key (e.g. the result of a
    /// USSD action that finished after its session had to end).
    public func queueNotice(_ msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await self.postgres.withConnection { connection in
            try await self.queueSMS(connection, to: msisdn, template: template, params: params, dedupe: dedupe)
        }
    }

    /// Queues an SMS in the caller's transaction, once per `dedupe` key.
    package func queueSMS(_ tx: PostgresConnection, to msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await Outbox.queue(tx, notice: template, to: msisdn, params: params, dedupe: dedupe)
    }

    /// As above, for a customer who may have been erased since: nobody is left to tell then.
    package func queueSMS(_ tx: PostgresConnection, to msisdn: MSISDN?, template: String, params: [String: String], dedupe: String) async throws {
        guard let msisdn else { return }
        try await self.queueSMS(tx, to: msisdn, template: template, params: params, dedupe: dedupe)
    }
}

extension Wallet {
    /// A status column read back into its enum; a value the schema's CHECK does not allow is a
    /// corrupt row, never a guess.
    static func status<Status: RawRepresentable>(_ text: String) throws -> Status where Status.RawValue == String {
        guard let status = Status(rawValue: text) else { throw CorruptRecord(description: "a stored status is \(text)") }
        return status
    }
}

/// A row holds a value the schema does not allow.
public struct CorruptRecord: Error, LogSafeError, Hashable {
    public let description: String
}

extension Wallet {
    /// What the ledger keeps of a movement's terms to know a retried key from a reused one: keyed
    /// (``PersonalData/fingerprint(_:)``), so that no number sits in the ledger's rows, when the
    /// wallet has personal-data keys (always, in production); the terms themselves without.
    package func fingerprint(_ terms: String) async throws -> String {
        guard let personalData = self.personalData else { return terms }
        return try await personalData.fingerprint(terms)
    }
}
