import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import Wallet

/// Personal data sealed per customer (issue 31): names and texts never in clear in the database or
/// its backups, bound to their row, erased by destroying the customer's key, keys rotated without
/// touching the data.
@Suite struct PersonalDataTests {
    let verified = try! OperatorAction(reason: "caller verified with national ID")
    let checked = try! OperatorAction(reason: "erasure request form 17 checked")

    @Test func aBackupHoldsNoNameOrTextInClear() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 10_000, name: "Achieng Wambui-Otieno")
        let otieno = try await ledger.funded("254722000111", cents: 0, name: "Otieno Kipchumba")
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(20), key: IdempotencyKey("send-1")!)
        let outbox = Outbox(postgres: ledger.postgres, personalData: ledger.wallet.personalData)
        _ = try await outbox.queueOperatorMessage("Habari Achieng, your refund of KES 340 is on its way", to: achieng)
        _ = try await outbox.queueOperatorMessage("Unregistered numbers get this too", to: MSISDN("254733444555")!)

        let dump = try await TestServers.dump(ledger.postgres.configuration)
        for secret in ["Achieng Wambui-Otieno", "Wambui", "Kipchumba", "refund of KES 340", "Unregistered numbers get"] {
            #expect(!dump.contains(secret), "\(secret) is in clear in the backup")
        }
        // What the dump holds instead: sealed values, which open with the keys.
        #expect(try await ledger.postgres.query("SELECT count(*) FROM customers WHERE name IS NULL AND name_sealed IS NOT NULL").single()!
            .decode(Int.self, column: 0) == 2)
        #expect(try await ledger.wallet.profile(achieng).name == "Achieng Wambui-Otieno")
        let claimed = try await outbox.claimDue(limit: 10)
        #expect(Set(try await claimed.asyncMap { try await outbox.text(of: $0).text }) == [
            "Habari Achieng, your refund of KES 340 is on its way", "Unregistered numbers get this too", nil,
        ])
        try await ledger.audit()
        await ledger.shutdown()
    }

    @Test func aSealedValueMovedToAnotherRowOrColumnDoesNotOpen() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 0, name: "Achieng")
        let otieno = try await ledger.funded("254722000111", cents: 0, name: "Otieno")
        // Achieng's sealed name copied onto Otieno's row: an error, never Achieng's name.
        try await ledger.postgres.query(
            "UPDATE customers SET name_sealed = (SELECT name_sealed FROM customers WHERE msisdn = \(achieng.value)) WHERE msisdn = \(otieno.value)")
        let moved = try await ledger.wallet.customer(otieno)
        await #expect(throws: PersonalDataError.doesNotOpen(.customerName(moved.subject))) { try await ledger.wallet.name(of: moved) }
        // Under the same customer's key but in another column (a text where a name goes): refused too.
        let personalData = try #require(ledger.wallet.personalData)
        let customer = try await ledger.wallet.customer(achieng)
        let text = try await personalData.seal("Achieng", for: customer.subject, at: .outboxMessage("operator:x"))
        await #expect(throws: PersonalDataError.doesNotOpen(.customerName(customer.subject))) {
            try await personalData.open(text, for: customer.subject, at: .customerName(customer.subject))
        }
        // An altered byte, and something that is not a sealed value at all.
        var altered = try #require(customer.sealedName)
        altered[altered.count - 1] ^= 1
        await #expect(throws: PersonalDataError.doesNotOpen(.customerName(customer.subject))) {
            try await personalData.open(altered, for: customer.subject, at: .customerName(customer.subject))
        }
        await #expect(throws: PersonalDataError.malformed(.customerName(customer.subject))) {
            try await personalData.open(Data("Achieng".utf8), for: customer.subject, at: .customerName(customer.subject))
        }
        #expect(try await ledger.wallet.name(of: customer) == "Achieng")
        await ledger.shutdown()
    }

    @Test func anErasureTakesTwoPeopleAndLeavesABackupFromBeforeItUnreadable() async throws {
        let ledger = try await Ledger.make()
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru"), try await ledger.staff("kamau"))
        let achieng = try await ledger.funded("254712345678", cents: 10_000, name: "Achieng Wambui")
        let otieno = try await ledger.funded("254722000111", cents: 0, name: "Otieno Kipchumba")
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: IdempotencyKey("send-all")!)
        _ = try await Outbox(postgres: ledger.postgres, personalData: ledger.wallet.personalData).queueOperatorMessage("Goodbye Achieng", to: achieng)

        // Only a closed, empty wallet: open, it is refused when asked.
        await #expect(throws: LedgerDeskError.self) { try await wanjiru.wallet.requestErasure(achieng, by: self.verified) }
        await #expect(throws: WalletError.self) { try await wanjiru.wallet.close(otieno, by: self.verified) }
        #expect(try await wanjiru.wallet.close(achieng, by: self.verified) == .changed)
        #expect(try await ledger.queued(achieng, "account_closed").count == 1)

        // The backup taken before the erasure.
        let backup = try await TestServers.dump(ledger.postgres.configuration)
        let subject = try await ledger.wallet.customer(achieng).subject
        let request = try await wanjiru.wallet.requestErasure(achieng, by: self.verified)
        #expect(request.kind == .erase && request.status == "pending")
        // Four eyes: the one who asked may not approve, though an approver.
        await #expect(throws: LedgerDeskError.sameOperator) { try await wanjiru.wallet.approve(request.id, by: self.checked) }
        #expect(try await kamau.wallet.approve(request.id, by: self.checked).status == "approved")
        #expect(try await ledger.wallet.destroyErasedKeys() == 1)
        #expect(try await ledger.wallet.destroyErasedKeys() == 0, "a key is destroyed once")

        // Erased everywhere: the row keeps no number, name or text, and the number is free to
        // register again; the ledger whole and balanced, under the pseudonymous subject.
        await #expect(throws: WalletError.self) { try await ledger.wallet.customer(achieng) }
        let row = try #require(
            try await ledger.postgres.query("SELECT msisdn, name_sealed, erased_at IS NOT NULL, status FROM customers WHERE subject = \(subject.uuidString)::uuid")
                .single()?.decode((String?, Data?, Bool, String).self))
        #expect(row.0 == nil && row.1 == nil && row.2 && row.3 == "closed")
        #expect(try await ledger.postgres.query("SELECT count(*) FROM outbox WHERE subject = \(subject.uuidString)::uuid").single()!.decode(Int.self, column: 0) == 0)
        let trail = try await ledger.postgres.query("SELECT action FROM audit_log WHERE subject = \(subject.uuidString)::uuid ORDER BY id DESC")
            .map { try $0.decode(String.self, column: 0) }
        #expect(trail.starts(with: ["ledger.erase_approved", "customer.erased"]) && trail.contains("customer.closed"), "\(trail)")
        let otienosStatement = try await ledger.wallet.statement(otieno, limit: 5)
        #expect(otienosStatement.count == 1 && otienosStatement[0].counterparty == nil, "the transfer stays; whose it was does not")
        try await ledger.audit()
        // The number is nowhere in a dump now: not in the trail, the requests, the ledger's
        // fingerprints, nor another customer's messages.
        let after = try await TestServers.dump(ledger.postgres.configuration)
        let left = after.split(separator: "\n").filter { $0.contains(achieng.value) || $0.contains("Achieng") }
        #expect(left.isEmpty, "\(left)")
        let personalData = try #require(ledger.wallet.personalData)
        await #expect(throws: PersonalDataError.destroyed(subject)) {
            try await personalData.seal("again", for: subject, at: .customerName(subject))
        }
        let again = try await ledger.wallet.register(msisdn: achieng, name: "Achieng Atieno", pin: "4826", language: "sw")
        #expect(again.subject != subject && again.erasedAt == nil)

        // The backup restored next to the key store as it is now: Achieng's fields do not open, and
        // Otieno's still do.
        let restored = PostgresClient(configuration: try await TestServers.restore(backup))
        let old = Wallet(postgres: restored, pins: Ledger.pins, personalData: personalData)
        let before = try await old.customer(achieng)
        #expect(before.erasedAt == nil && before.sealedName != nil, "the backup is from before the erasure")
        personalData.forgetKeptKeys()
        #expect(try await old.name(of: before) == nil)
        let message = try await restored.query(
            "SELECT message_sealed, dedupe_key FROM outbox WHERE subject = \(before.subject.uuidString)::uuid AND message_sealed IS NOT NULL"
        ).single()!.decode((Data, String).self)
        #expect(try await personalData.open(message.0, for: before.subject, at: .outboxMessage(message.1)) == nil)
        #expect(try await old.name(of: try await old.customer(otieno)) == "Otieno Kipchumba")
        await restored.shutdown()
        await ledger.shutdown()
    }

    @Test func aRotationRewrapsEveryKeyAndTheOldVersionIsThenRetired() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kek-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/personal-data.keys"
        try SoftwarePINKeys.createIfMissing(file: file, noun: "personal-data key")
        let keys = try SoftwarePINKeys(file: file, noun: "personal-data key")
        let personalData = try await TestPersonalData.make(store: try await TestPersonalData.freshStore(), keys: keys)
        let (before, after) = (UUID(), UUID())
        let old = try await personalData.seal("written before", for: before, at: .customerName(before))
        #expect(try await personalData.keysByVersion() == [1: 1])

        // A version added by hand is not retired while a key is wrapped under the old one.
        let (version, rewrapped) = try await personalData.rotate()
        #expect(version == 2 && rewrapped == 1)
        #expect(try await personalData.keysByVersion() == [2: 1])
        let new = try await personalData.seal("written after", for: after, at: .customerName(after))
        await #expect { try await personalData.retire(version: 2) } throws: { "\($0)".contains("is the newest") }
        // A process still on version 1 alone cannot wrap a new key under it any more.
        let stale = try await TestPersonalData.make(store: personalData.store.configuration, keys: SoftwarePINKeys(key: try Self.version1(of: file)))
        await #expect { try await stale.seal("x", for: UUID(), at: .customerName(UUID())) } throws: { "\($0)".contains("newer personal-data key") }
        await stale.store.shutdown()
        _ = try keys.addVersion(importing: nil)
        await #expect { try await personalData.retire(version: 2) } throws: { "\($0)".contains("still wrapped under KEK version 2") }
        #expect(try await personalData.rewrap() == 2)
        try await personalData.retire(version: 1)
        try await personalData.retire(version: 2)
        #expect(keys.versions == [3])
        #expect(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.count == 1)

        // Both read back with only the newest version left, from the key store (nothing kept).
        personalData.forgetKeptKeys()
        let reopened = try await TestPersonalData.make(store: personalData.store.configuration, keys: try SoftwarePINKeys(file: file, noun: "personal-data key"))
        #expect(try await reopened.open(old, for: before, at: .customerName(before)) == "written before")
        #expect(try await reopened.open(new, for: after, at: .customerName(after)) == "written after")
        await reopened.store.shutdown()
        await personalData.store.shutdown()
    }

    @Test func rowsFromBeforeSealingAreSealedAndAnErasedCustomersAreDropped() async throws {
        let ledger = try await Ledger.make()
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru"), try await ledger.staff("kamau"))
        // Rows as migration 0019 left them, written as the owner: names and texts in clear.
        try await ledger.postgres.query(
            """
            INSERT INTO customers (msisdn, name, language, pin_hash) VALUES ('254712000001', 'Legacy Kiprono', 'en', 'x'), ('254712000002', 'Gone Chelimo', 'en', 'x')
            """)
        try await ledger.postgres.query(
            "INSERT INTO accounts (customer_id, kind) SELECT id, k FROM customers, (VALUES ('main'), ('savings')) v(k) WHERE msisdn LIKE '25471200000_'")
        try await ledger.postgres.query(
            """
            INSERT INTO sms_inbound (id, sender, text_masked) VALUES ('ATXid_old_1', '254712000001', 'BAL ****'), ('ATXid_old_2', '254712000002', 'MINI ****'),
                ('ATXid_old_3', '254799000003', 'HELLO from nobody')
            """)
        try await ledger.postgres.query(
            """
            INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key, message)
            VALUES ('sms', '254712000001', 'en', 'reply', '{}', 'old:1', 'Balance KES 5'), ('sms', '254712000002', 'en', 'reply', '{}', 'old:2', 'Mini statement')
            """)
        // One of them is erased before `migrate` seals anything: their old texts must go, not be sealed.
        let gone = MSISDN("254712000002")!
        _ = try await wanjiru.wallet.close(gone, by: self.verified)
        let request = try await wanjiru.wallet.requestErasure(gone, by: self.verified)
        _ = try await kamau.wallet.approve(request.id, by: self.checked)
        #expect(try await Wallet.clearPersonalValues(ledger.postgres) == 4, "the legacy customer's name, text and reply, and the stranger's text")

        #expect(try await ledger.wallet.sealClearPersonalData(batchSize: 2) == 4)
        #expect(try await Wallet.clearPersonalValues(ledger.postgres) == 0)
        #expect(try await ledger.wallet.sealClearPersonalData() == 0, "nothing twice")
        let legacy = try await ledger.wallet.customer(MSISDN("254712000001")!)
        #expect(try await ledger.wallet.name(of: legacy) == "Legacy Kiprono")
        let personalData = try #require(ledger.wallet.personalData)
        let texts = try await ledger.postgres.query("SELECT id, subject::text, text_sealed FROM sms_inbound ORDER BY id").map {
            try $0.decode((String, String?, Data?).self)
        }
        #expect(texts.map(\.0) == ["ATXid_old_1", "ATXid_old_3"], "the erased customer's messages went with the erasure")
        guard texts.count == 2 else { return }
        #expect(try await personalData.open(try #require(texts[0].2), for: legacy.subject, at: .inboundText("ATXid_old_1")) == "BAL ****")
        let month = try #require(texts[1].1.flatMap(UUID.init(uuidString:)))
        #expect(try await personalData.open(try #require(texts[1].2), for: month, at: .inboundText("ATXid_old_3")) == "HELLO from nobody")
        let dump = try await TestServers.dump(ledger.postgres.configuration)
        for clear in ["Legacy Kiprono", "Gone Chelimo", "HELLO from nobody", "Balance KES 5", "Mini statement"] { #expect(!dump.contains(clear), "\(clear)") }
        await ledger.shutdown()
    }

    @Test func onlyTheKeyCustodianDestroysKeysAndTheKeyStoreRecordsWho() async throws {
        let ledger = try await Ledger.make()
        // A key store made after the group roles exist, with their grants.
        let store = try await TestPersonalData.freshStore()
        let personalData = try await TestPersonalData.make(store: store)
        let (customer, month) = (UUID(), PersonalData.periodSubject(Date()))
        _ = try await personalData.seal("Achieng", for: customer, at: .customerName(customer))
        _ = try await personalData.seal("HELLO", for: month, purpose: .period, at: .inboundText("x"))
        let approver = PostgresClient(configuration: try await TestServers.login("kamau", in: "ussd_approver", to: store))
        let next = PersonalData.periodSubject(Date().addingTimeInterval(40 * 86_400))
        // Not an approver, alone, for any key: the key store cannot see whether an erasure was
        // approved (the custodian's sweep destroys the keys of customers the ledger shows erased).
        for subject in [customer, month, next, PersonalData.indexSubject] {
            await #expect { try await approver.query("SELECT data_key_destroy(\(subject.uuidString)::uuid, 'x')") } throws: {
                ($0 as? PostgresError)?.sqlState == "42501"
            }
        }
        await #expect(throws: PostgresError.self) { try await approver.query("DELETE FROM data_keys") }
        #expect(try await personalData.destroy(customer, reason: "erasure #7"))
        let login = try #require(URLComponents(string: store.connectionString)?.user)
        #expect(try await personalData.store.query("SELECT destroyed_by, reason FROM destroyed_keys WHERE subject = \(customer.uuidString)::uuid")
            .single()!.decode((String, String).self) == (login, "erasure #7"))
        #expect(try await personalData.open(try await personalData.seal("y", for: month, purpose: .period, at: .inboundText("y")), for: month, at: .inboundText("y")) == "y")
        await approver.shutdown()
        await personalData.store.shutdown()
        await ledger.shutdown()
    }

    @Test func aNameIsFoundByItsBlindIndexWithoutReadingNames() async throws {
        let ledger = try await Ledger.make()
        _ = try await ledger.funded("254712345678", cents: 0, name: "Achieng Wambui")
        _ = try await ledger.funded("254722000111", cents: 0, name: "Otieno Wambui")
        let personalData = try #require(ledger.wallet.personalData)
        let wambui = try await personalData.blindIndex("WAMBUI")
        let found = try await ledger.postgres.query(
            "SELECT msisdn FROM customers WHERE name_index @> \(Wallet.byteaArray(wambui))::bytea[] ORDER BY msisdn"
        ).map { try $0.decode(String.self, column: 0) }
        #expect(found == ["254712345678", "254722000111"])
        let both = try await personalData.blindIndex("achieng  wambui")
        #expect(try await ledger.postgres.query("SELECT count(*) FROM customers WHERE name_index @> \(Wallet.byteaArray(both))::bytea[]").single()!
            .decode(Int.self, column: 0) == 1)
        await ledger.shutdown()
    }
}

extension PersonalDataTests {
    /// Version 1's key from a key file.
    static func version1(of file: String) throws -> [UInt8] {
        let line = try #require(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("1 ") })
        return try #require(Hex.decode(String(line.dropFirst(2))))
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
