import Basics
import Foundation
import Postgres

extension Wallet {
    /// How many values rows from before migration 0020 still hold in clear (names, inbound texts,
    /// worded outbox texts).
    public static func clearPersonalValues(_ postgres: PostgresClient) async throws -> Int? {
        try await postgres.query(
            """
            SELECT (SELECT count(*) FROM customers WHERE name IS NOT NULL) + (SELECT count(*) FROM sms_inbound WHERE text_masked IS NOT NULL)
                + (SELECT count(*) FROM outbox WHERE message IS NOT NULL)
            """
        ).single()?.decode(Int.self, column: 0)
    }

    /// Seals what rows from before migration 0020 hold in clear, `batchSize` rows per short
    /// transaction, as the schema's owner (`migrate`): customers' names (with their blind index),
    /// inbound SMS texts and worded outbox texts; the clear column is emptied in the same
    /// statement. Returns how many values were sealed. Safe to run again (and while serving).
    @discardableResult
    public func sealClearPersonalData(batchSize: Int = 500) async throws -> Int {
        let personalData = try self.requirePersonalData()
        var sealed = 0
        while true {
            let names = try await self.postgres.query(
                "SELECT id, subject::text, name FROM customers WHERE name IS NOT NULL ORDER BY id LIMIT \(batchSize)"
            ).map { try $0.decode((Int64, String, String).self) }
            for (id, text, name) in names {
                let subject = UUID(uuidString: text)!
                let value = try await personalData.seal(name, for: subject, at: .customerName(subject))
                let index = try await personalData.blindIndex(name)
                try await self.postgres.query(
                    """
                    UPDATE customers SET name_sealed = \(value), name_index = \(Self.byteaArray(index))::bytea[], name = NULL
                    WHERE id = \(id) AND name = \(name)
                    """
                )
            }
            sealed += names.count
            if names.count < batchSize { break }
        }
        while true {
            let texts = try await self.postgres.query(
                """
                SELECT s.id, s.received_at, c.subject::text, s.text_masked, c.erased_at IS NOT NULL FROM sms_inbound s
                LEFT JOIN customers c ON c.msisdn = s.sender
                WHERE s.text_masked IS NOT NULL ORDER BY s.id LIMIT \(batchSize)
                """
            ).map { try $0.decode((String, Date, String?, String, Bool).self) }
            for (id, received, customer, text, erased) in texts {
                // An erased customer's text is not sealed under anyone's key: it goes.
                if erased {
                    try await self.postgres.query("UPDATE sms_inbound SET text_masked = NULL WHERE id = \(id)")
                    continue
                }
                let subject = customer.flatMap(UUID.init(uuidString:)) ?? PersonalData.periodSubject(received)
                let value: Data
                do {
                    value = try await personalData.seal(text, for: subject, purpose: customer == nil ? .period : .customer, at: .inboundText(id))
                } catch PersonalDataError.destroyed {
                    // Its month is past its period already: the text goes.
                    try await self.postgres.query("UPDATE sms_inbound SET text_masked = NULL WHERE id = \(id)")
                    continue
                }
                try await self.postgres.query(
                    "UPDATE sms_inbound SET subject = \(subject.uuidString)::uuid, text_sealed = \(value), text_masked = NULL WHERE id = \(id) AND text_masked IS NOT NULL"
                )
            }
            sealed += texts.count
            if texts.count < batchSize { break }
        }
        while true {
            let messages = try await self.postgres.query(
                """
                SELECT o.id, o.created_at, c.subject::text, o.dedupe_key, o.message, c.erased_at IS NOT NULL FROM outbox o
                LEFT JOIN customers c ON c.msisdn = o.recipient
                WHERE o.message IS NOT NULL ORDER BY o.id LIMIT \(batchSize)
                """
            ).map { try $0.decode((Int64, Date, String?, String, String, Bool).self) }
            for (id, created, customer, dedupe, text, erased) in messages {
                if erased {
                    try await self.postgres.query("UPDATE outbox SET message = NULL WHERE id = \(id)")
                    continue
                }
                let subject = customer.flatMap(UUID.init(uuidString:)) ?? PersonalData.periodSubject(created)
                let value: Data
                do {
                    value = try await personalData.seal(text, for: subject, purpose: customer == nil ? .period : .customer, at: .outboxMessage(dedupe))
                } catch PersonalDataError.destroyed {
                    try await self.postgres.query("UPDATE outbox SET message = NULL WHERE id = \(id)")
                    continue
                }
                try await self.postgres.query(
                    "UPDATE outbox SET subject = \(subject.uuidString)::uuid, message_sealed = \(value), message = NULL WHERE id = \(id) AND message IS NOT NULL"
                )
            }
            sealed += messages.count
            if messages.count < batchSize { break }
        }
        return sealed
    }
}
