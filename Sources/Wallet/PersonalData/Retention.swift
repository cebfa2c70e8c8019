import Basics
import Foundation
import Postgres

/// How long personal data is kept (PRIVACY.md: retention), by kind. The ledger (transfers,
/// deposits, payouts, paybill payments and the M-Pesa bodies kept with them) and the audit trail
/// keep their legal periods and are never touched here; a customer's own fields go with their
/// erasure.
public struct Retention: Sendable, Hashable {
    /// `RETENTION_SMS_DAYS` (default 180): inbound SMS commands (done) and outbound SMS (sent or
    /// given up on) older than this are deleted; pending ones never.
    public var smsDays = 180
    /// `RETENTION_UNKNOWN_SENDER_DAYS` (default 90): personal data of people with no wallet (an SMS
    /// from an unregistered number, a payer's name in a payment to no known account) is sealed
    /// under its calendar month's key; a month's key is destroyed this long after the month ends,
    /// which makes all of it unreadable at once, wherever it is kept, backups included.
    public var unknownSenderDays = 90
    /// `RETENTION_REFUSED_CALLBACK_DAYS` (default 90): refused provider callbacks (route, reason,
    /// source address; never a body) older than this are deleted.
    public var refusedCallbackDays = 90

    public init(smsDays: Int = 180, unknownSenderDays: Int = 90, refusedCallbackDays: Int = 90) {
        self.smsDays = smsDays
        self.unknownSenderDays = unknownSenderDays
        self.refusedCallbackDays = refusedCallbackDays
    }
}

/// What one `retention run` removed (or, in a dry run, would remove).
public struct RetentionReport: Sendable, Hashable {
    public var inboundSMS = 0
    public var outboundSMS = 0
    public var refusedCallbacks = 0
    /// The months whose key was (or would be) destroyed, as `YYYY-MM`.
    public var monthKeys: [String] = []

    public init() {}
}

extension Wallet {
    /// Removes what is past its period at `now` (``Retention``), `batchSize` rows per short
    /// transaction so no lock is held long; a dry run counts the same rows and removes nothing.
    /// Month keys are destroyed through the key store's function, as its owner (the key custodian).
    public func runRetention(_ retention: Retention, now: Date, dryRun: Bool, batchSize: Int = 1000) async throws -> RetentionReport {
        var report = RetentionReport()
        let smsCutoff = now.addingTimeInterval(-Double(retention.smsDays) * 86_400)
        let refusalsCutoff = now.addingTimeInterval(-Double(retention.refusedCallbackDays) * 86_400)
        if dryRun {
            report.refusedCallbacks = try await self.postgres.query("SELECT count(*) FROM callback_refusals WHERE at < \(refusalsCutoff)")
                .single()!.decode(Int.self, column: 0)
            report.inboundSMS = try await self.postgres.query("SELECT count(*) FROM sms_inbound WHERE status = 'done' AND received_at < \(smsCutoff)")
                .single()!.decode(Int.self, column: 0)
            report.outboundSMS = try await self.postgres.query(
                "SELECT count(*) FROM outbox WHERE status IN ('sent', 'failed') AND created_at < \(smsCutoff)").single()!.decode(Int.self, column: 0)
        } else {
            while true {
                let removed = try await self.postgres.query(
                    """
                    DELETE FROM sms_inbound WHERE id IN (
                        SELECT id FROM sms_inbound WHERE status = 'done' AND received_at < \(smsCutoff) LIMIT \(batchSize) FOR UPDATE SKIP LOCKED)
                    """
                ).affectedRows
                report.inboundSMS += removed
                if removed < batchSize { break }
            }
            while true {
                let removed = try await self.postgres.query(
                    """
                    DELETE FROM outbox WHERE id IN (
                        SELECT id FROM outbox WHERE status IN ('sent', 'failed') AND created_at < \(smsCutoff) LIMIT \(batchSize) FOR UPDATE SKIP LOCKED)
                    """
                ).affectedRows
                report.outboundSMS += removed
                if removed < batchSize { break }
            }
            while true {
                let removed = try await self.postgres.query(
                    """
                    DELETE FROM callback_refusals WHERE id IN (
                        SELECT id FROM callback_refusals WHERE at < \(refusalsCutoff) LIMIT \(batchSize) FOR UPDATE SKIP LOCKED)
                    """
                ).affectedRows
                report.refusedCallbacks += removed
                if removed < batchSize { break }
            }
        }
        // Month keys: every month that ended more than unknownSenderDays before now, as far back as
        // twenty years (a month's subject is a hash of its name: each is tried; one with no key has
        // nothing to destroy).
        let personalData = try self.requirePersonalData()
        try await personalData.prepareStore()
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi")!
        let keysCutoff = now.addingTimeInterval(-Double(retention.unknownSenderDays) * 86_400)
        let present = Set(
            try await personalData.store.query("SELECT subject::text FROM data_keys WHERE purpose = 'period'").map { try $0.decode(String.self, column: 0) })
        var month = calendar.date(from: calendar.dateComponents([.year, .month], from: keysCutoff))!
        var expired: [(String, UUID)] = []
        for _ in 0..<240 {
            // `month` is the month that ends at the cutoff or before: step back first.
            month = calendar.date(byAdding: .month, value: -1, to: month)!
            let parts = calendar.dateComponents([.year, .month], from: month)
            let subject = PersonalData.periodSubject(year: parts.year!, month: parts.month!)
            if present.contains(subject.uuidString.lowercased()) { expired.append((String(format: "%04d-%02d", parts.year!, parts.month!), subject)) }
        }
        for (name, subject) in expired.reversed() {
            report.monthKeys.append(name)
            if !dryRun { try await personalData.destroy(subject, reason: "retention: month past RETENTION_UNKNOWN_SENDER_DAYS") }
        }
        return report
    }
}
