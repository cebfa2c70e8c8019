import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import Wallet

/// `retention run` (issue 31): exactly what is past its period goes, at a clock the test sets.
@Suite struct RetentionTests {
    @Test func exactlyWhatIsPastItsPeriodIsRemovedAndADryRunRemovesNothing() async throws {
        let ledger = try await Ledger.make()
        // A key store of its own: the months this test expires are other tests' months too.
        let personalData = try await TestPersonalData.make(store: try await TestPersonalData.freshStore())
        let wallet = Wallet(postgres: ledger.postgres, pins: Ledger.pins, personalData: personalData)
        let now = ISO8601DateFormatter().date(from: "2027-06-15T09:00:00Z")!
        let retention = Retention(smsDays: 30, unknownSenderDays: 60, refusedCallbackDays: 14)
        let day: TimeInterval = 86_400
        // Inbound SMS: done long ago, done a day inside the period, received (unfinished) long ago.
        for (id, age, status) in [("old-done", 31.0, "done"), ("young-done", 29.0, "done"), ("old-received", 90.0, "received"), ("edge", 30.0 - 0.01, "done")] {
            try await ledger.postgres.query(
                "INSERT INTO sms_inbound (id, sender, status, received_at) VALUES (\(id), '254712345678', \(status), \(now.addingTimeInterval(-age * day)))")
        }
        // Outbound: sent and failed long ago, pending long ago, sent recently.
        for (key, age, status) in [("sent-old", 45.0, "sent"), ("failed-old", 31.0, "failed"), ("pending-old", 200.0, "pending"), ("sent-young", 10.0, "sent")] {
            try await ledger.postgres.query(
                """
                INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key, status, created_at)
                VALUES ('sms', '254712345678', 'en', 'reply', '{}', \(key), \(status), \(now.addingTimeInterval(-age * day)))
                """)
        }
        // Refused callbacks: 15 days old (past 14) and 13 (inside).
        for (route, age) in [("/mpesa/c2b/confirmation", 15.0), ("/ussd/africastalking", 13.0)] {
            try await ledger.postgres.query(
                "INSERT INTO callback_refusals (at, route, reason, source, status) VALUES (\(now.addingTimeInterval(-age * day)), \(route), 'wrong token', '203.0.113.9', 404)")
        }
        // Month keys: March 2027 ended 76 days before `now` (past 60), April 2027 ended 45 days
        // before (inside), and June 2027 is the current month.
        var sealed: [String: Data] = [:]
        for (year, month) in [(2027, 3), (2027, 4), (2027, 6)] {
            let subject = PersonalData.periodSubject(year: year, month: month)
            sealed["\(year)-\(month)"] = try await personalData.seal("HELLO from nobody", for: subject, purpose: .period, at: .inboundText("m\(month)"))
        }

        let dry = try await wallet.runRetention(retention, now: now, dryRun: true)
        #expect(dry.inboundSMS == 1 && dry.outboundSMS == 2 && dry.refusedCallbacks == 1 && dry.monthKeys == ["2027-03"], "\(dry)")
        #expect(try await ledger.postgres.query("SELECT count(*) FROM sms_inbound").single()!.decode(Int.self, column: 0) == 4, "a dry run removes nothing")

        let done = try await wallet.runRetention(retention, now: now, dryRun: false, batchSize: 1)
        #expect(done == dry)
        let inbound = try await ledger.postgres.query("SELECT id FROM sms_inbound ORDER BY id").map { try $0.decode(String.self, column: 0) }
        #expect(inbound == ["edge", "old-received", "young-done"])
        let outbound = try await ledger.postgres.query("SELECT dedupe_key FROM outbox ORDER BY dedupe_key").map { try $0.decode(String.self, column: 0) }
        #expect(outbound == ["pending-old", "sent-young"])
        let refusals = try await ledger.postgres.query("SELECT route FROM callback_refusals").map { try $0.decode(String.self, column: 0) }
        #expect(refusals == ["/ussd/africastalking"])
        personalData.forgetKeptKeys()
        let march = PersonalData.periodSubject(year: 2027, month: 3)
        #expect(try await personalData.open(sealed["2027-3"]!, for: march, at: .inboundText("m3")) == nil, "March's key destroyed")
        let april = PersonalData.periodSubject(year: 2027, month: 4)
        #expect(try await personalData.open(sealed["2027-4"]!, for: april, at: .inboundText("m4")) == "HELLO from nobody")
        // Again: nothing more.
        #expect(try await wallet.runRetention(retention, now: now, dryRun: false) == RetentionReport())
        try await ledger.audit()
        await personalData.store.shutdown()
        await ledger.shutdown()
    }
}
