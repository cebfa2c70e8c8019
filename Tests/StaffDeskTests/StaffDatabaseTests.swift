import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Synchronization
@testable import StaffDesk
import Testing
import TestSupport
import Wallet

/// The desk in the database (migration 0023): its login holds no right of the people it acts as
/// until it switches to one, the database records and compares the person, and an account's desk
/// role must match its database group.
@Suite struct StaffDatabaseTests {
    static let reason = try! OperatorAction(reason: "ticket 4411, caller verified")

    /// A desk login (in ussd_desk) on the ledger's database, and its client.
    static func desk(_ ledger: Ledger, poolSize: Int = 2) async throws -> (String, PostgresClient) {
        let name = "desk_" + UUID().uuidString.prefix(8).lowercased()
        _ = try await DatabaseRoles.createLogin(ledger.postgres, name: name, group: "ussd_desk", password: nil)
        var configuration = TestServers.connection(to: ledger.postgres.configuration, as: name)
        configuration.poolSize = poolSize
        let client = PostgresClient(configuration: configuration)
        ledger.extras.add(client)
        return (name, client)
    }

    static func member(_ ledger: Ledger, _ prefix: String, _ role: DeskRole) async throws -> String {
        let login = prefix + "_" + UUID().uuidString.prefix(6).lowercased()
        _ = try await StaffDirectory.create(owner: ledger.postgres, login: login, displayName: prefix.capitalized, role: role, password: "a long enough password")
        return login
    }

    @Test func theDeskActsAsThePersonAndHoldsNoRightOfItsOwn() async throws {
        let ledger = try await Ledger.make()
        let (deskName, desk) = try await Self.desk(ledger, poolSize: 1)
        let maker = try await Self.member(ledger, "chebet", .financeMaker)
        let approver = try await Self.member(ledger, "baraka", .financeApprover)
        let achieng = try await ledger.funded("254712345678", cents: 10_000)

        // As itself the desk may not ask, read customers, or write a person's kind of audit row.
        let asking = await #expect(throws: PostgresError.self) {
            try await desk.query("INSERT INTO ledger_requests (kind, msisdn, amount, direction, reason) VALUES ('adjustment', \(achieng.value), 100, 'from_suspense', 'x')")
        }
        #expect(asking?.sqlState == "42501")
        await #expect(throws: PostgresError.self) { try await desk.query("SELECT msisdn FROM customers") }
        let forged = await #expect(throws: PostgresError.self) {
            try await desk.query("INSERT INTO audit_log (actor, action, reason) VALUES ('someone', 'pin.unlocked', 'forged')")
        }
        #expect(forged?.sqlState == "UL004")
        // Its own rows are written under its own name, whatever it claims.
        try await StaffDirectory(postgres: desk).audit("desk.signin_refused", login: maker, details: ["why": "a wrong password"])
        let own = try await ledger.postgres.query("SELECT actor FROM audit_log WHERE action = 'desk.signin_refused'").single()!.decode(String.self, column: 0)
        #expect(own == deskName)

        // Acting as the maker: the database records the maker, and the desk behind them.
        let asMaker = Wallet(postgres: desk.acting(as: maker), pins: Ledger.pins)
        let request = try await asMaker.requestAdjustment(achieng, amount: .shillings(30), direction: .fromSuspense, by: Self.reason)
        #expect(request.requestedBy == maker)
        let trail = try await ledger.postgres.query("SELECT actor, db_user FROM audit_log WHERE action = 'ledger.adjustment_requested'").single()!
        #expect(try trail.decode((String, String).self) == (maker, "\(deskName) as \(maker)"))
        // The role ended with the transaction: the same (only) connection is the desk again.
        #expect(try await desk.query("SELECT current_user::text").single()!.decode(String.self, column: 0) == deskName)
        // Four eyes on the person, not the desk: the maker cannot decide their own request.
        await #expect(throws: LedgerDeskError.self) { try await asMaker.approve(request.id, by: Self.reason) }

        let asApprover = Wallet(postgres: desk.acting(as: approver), pins: Ledger.pins)
        let approved = try await asApprover.approve(request.id, by: Self.reason)
        #expect(approved.status == "approved" && approved.decidedBy == approver)
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(130))
        // A transaction that sets its own isolation level still works under the switch.
        let report = try await asApprover.postgres.transaction(isolation: .repeatableRead) { tx in
            try await tx.query("SELECT current_user::text, current_setting('transaction_isolation')").single()!.decode((String, String).self)
        }
        #expect(report == (approver, "repeatable read"))
        try await ledger.audit()
        await ledger.shutdown()
    }

    @Test func anotherMemberOfSupportDecidesAPINResetButNotACorrection() async throws {
        let ledger = try await Ledger.make()
        let (_, desk) = try await Self.desk(ledger)
        let (amina, wanjiru) = (try await Self.member(ledger, "amina", .support), try await Self.member(ledger, "wanjiru", .support))
        let achieng = try await ledger.funded("254712345679", cents: 5_000)
        let asAmina = Wallet(postgres: desk.acting(as: amina), pins: Ledger.pins)
        let asWanjiru = Wallet(postgres: desk.acting(as: wanjiru), pins: Ledger.pins)

        let reset = try await asAmina.requestPINReset(achieng, by: Self.reason)
        await #expect(throws: LedgerDeskError.sameOperator) { try await asAmina.approve(reset.id, by: Self.reason) }
        #expect(try await asWanjiru.approve(reset.id, by: Self.reason).status == "approved")
        #expect(try await ledger.wallet.customer(achieng).pinResetRequired)

        // Not a finance maker (also in ussd_operator), nor an operator without a desk account.
        let maker = try await Self.member(ledger, "chebet", .financeMaker)
        let cli = try await ledger.staff("kioko", "ussd_operator")
        let second = try await Wallet(postgres: desk.acting(as: maker), pins: Ledger.pins).requestPINReset(
            try await ledger.funded("254712345670", cents: 100), by: Self.reason)
        for wallet in [Wallet(postgres: desk.acting(as: maker), pins: Ledger.pins), cli.wallet] {
            await #expect(throws: LedgerDeskError.notPermitted("only an approver (ussd_approver) may decide a request")) {
                try await wallet.approve(second.id, by: Self.reason)
            }
        }
        #expect(try await asWanjiru.approve(second.id, by: Self.reason).status == "approved")

        let correction = try await asAmina.requestAdjustment(achieng, amount: .shillings(5), direction: .fromSuspense, by: Self.reason)
        await #expect(throws: LedgerDeskError.notPermitted("only an approver (ussd_approver) may decide a request")) {
            try await asWanjiru.approve(correction.id, by: Self.reason)
        }
        await ledger.shutdown()
    }

    @Test func aDeskRoleMatchesItsDatabaseGroupAndOnlyTheDeskReadsAccounts() async throws {
        let ledger = try await Ledger.make()
        let (_, desk) = try await Self.desk(ledger)
        let amina = try await Self.member(ledger, "amina", .support)
        // An operator's login may not be made a finance approver by an UPDATE, even the owner's.
        let mismatch = await #expect(throws: PostgresError.self) {
            try await ledger.postgres.query("UPDATE staff SET desk_role = 'finance-approver' WHERE login = \(amina)")
        }
        #expect(mismatch?.sqlState == "UL020")
        // Nor may the desk change a role at all.
        await #expect(throws: PostgresError.self) { try await desk.query("UPDATE staff SET desk_role = 'admin' WHERE login = \(amina)") }
        // Password hashes and TOTP secrets are read by the desk alone.
        for role in ["ussd_app", "ussd_report", "ussd_operator", "ussd_approver"] {
            let client = PostgresClient(configuration: try await TestServers.login("reader", in: role, to: ledger.postgres.configuration))
            ledger.extras.add(client)
            let refused = await #expect(throws: PostgresError.self) { try await client.query("SELECT totp_secret FROM staff") }
            #expect(refused?.sqlState == "42501", "\(role) read the staff accounts")
        }
        #expect(try await StaffDirectory(postgres: desk).member(amina)?.role == .support)
        // An account for a login already in another group is refused.
        let other = try await TestServers.login("approver", in: "ussd_approver", to: ledger.postgres.configuration)
        let name = other.connectionString.split(separator: "@")[0].split(separator: "/").last.map(String.init)!
        await #expect(throws: WalletError.self) {
            _ = try await StaffDirectory.create(owner: ledger.postgres, login: name, displayName: "Two Hats", role: .support, password: "a long enough password")
        }
        await ledger.shutdown()
    }

    @Test func aFloodOfRefusalsWritesAtMostSixtyRowsAMinuteAndCountsTheRest() async throws {
        let ledger = try await Ledger.make()
        let (_, desk) = try await Self.desk(ledger)
        let clock = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let directory = StaffDirectory(postgres: desk, now: { clock.withLock { $0 } })
        for _ in 0..<65 { try await directory.audit("desk.post_refused", login: nil, details: ["why": "no session"]) }
        try await directory.audit("desk.signed_in", login: "amina", details: [:])
        let count = { try await ledger.postgres.query("SELECT count(*) FROM audit_log WHERE action = 'desk.post_refused'").single()!.decode(Int.self, column: 0) }
        #expect(try await count() == 60)
        #expect(try await ledger.postgres.query("SELECT count(*) FROM audit_log WHERE action = 'desk.signed_in'").single()!.decode(Int.self, column: 0) == 1, "not a refusal: always written")
        clock.withLock { $0 += 60 }
        try await directory.audit("desk.post_refused", login: nil, details: ["why": "no session"])
        let last = try await ledger.postgres.query("SELECT after->>'suppressed_before' FROM audit_log WHERE action = 'desk.post_refused' ORDER BY id DESC LIMIT 1").single()!
        #expect(try last.decode(String?.self, column: 0) == "5")
        #expect(try await count() == 61)
        await ledger.shutdown()
    }

    @Test func aCodeIsTakenOnceAndRepeatedFailuresLock() async throws {
        let ledger = try await Ledger.make()
        let (_, desk) = try await Self.desk(ledger)
        let directory = StaffDirectory(postgres: desk)
        let amina = try await Self.member(ledger, "amina", .support)
        let member = try #require(try await directory.member(amina))
        #expect(try await directory.checkPassword("a long enough password", of: member))
        #expect(try await !directory.checkPassword("a long enough passwore", of: member))
        #expect(try await !directory.checkPassword("a long enough password", of: nil), "an unknown login never passes, even with a right-looking password")

        let step = StaffTOTP.step(at: Date())
        #expect(try await directory.acceptSecondFactor(amina, step: step, epoch: 0))
        #expect(try await !directory.acceptSecondFactor(amina, step: step, epoch: 0), "the same step twice")
        #expect(try await !directory.acceptSecondFactor(amina, step: step + 1, epoch: 1), "a code after a reset or sign-out everywhere")
        #expect(try await !directory.acceptSecondFactor(amina, step: step - 1, epoch: 0), "an earlier step after a later one")
        #expect(try await directory.member(amina)?.totpEnrolledAt != nil)

        // Tries are reserved before they are judged: however many arrive at once, five are judged,
        // and a sixth while five are in flight (or lost to a crash) locks the account then and there.
        var reserved = 0
        for _ in 0..<8 where try await directory.reserveAttempt(amina, limit: 5, lockFor: .seconds(900)) != nil { reserved += 1 }
        #expect(reserved == 5)
        let until = try #require(try await directory.member(amina)?.lockedUntil)
        #expect(until > Date().addingTimeInterval(800))
        #expect(try await directory.reserveAttempt(amina, limit: 5, lockFor: .seconds(900)) == nil, "locked: no try at all")
        #expect(try await !directory.acceptSecondFactor(amina, step: step + 2, epoch: 0), "not even a right code while locked")
        #expect(try await directory.recordFailure(amina, limit: 5, lockFor: .seconds(900)) == nil, "a lock is not lengthened by more failures")
        // The lock ends by itself, or when an administrator lifts it.
        #expect(try await directory.reserveAttempt(amina, limit: 5, lockFor: .seconds(900), now: Date().addingTimeInterval(1000)) != nil)
        #expect(try await directory.unlock(amina))
        #expect(try await directory.member(amina)?.lockedUntil == nil)
        // Five wrong tries in a row lock it too.
        for _ in 0..<5 { _ = try await directory.reserveAttempt(amina, limit: 5, lockFor: .seconds(900)) }
        #expect(try await directory.recordFailure(amina, limit: 5, lockFor: .seconds(900)) != nil)
        await directory.shutdown()
        await ledger.shutdown()
    }
}

/// Passwords and codes without a database.
@Suite struct StaffSecretsTests {
    @Test func numbersInWhatTheDeskShowsAreMasked() {
        #expect(DeskFormat.maskingNumbers("sms:254712345678:1 to 233241234567") == "sms:2547***678:1 to 2332***567")
        #expect(DeskFormat.maskingNumbers("receipt QGH12345678, transfer 1234567890123") == "receipt QGH12345678, transfer 1234567890123", "not a number")
    }

    @Test func passwordsAreScryptWithTheirCostAndSaltKept() throws {
        let hash = try StaffPassword.hash("correct horse battery", cost: .init(log2Rounds: 10, blockSize: 8, parallelism: 1))
        #expect(hash.hasPrefix("scrypt$10$8$1$"))
        #expect(StaffPassword.verify("correct horse battery", against: hash))
        #expect(!StaffPassword.verify("correct horse batterz", against: hash))
        #expect(try StaffPassword.hash("correct horse battery", cost: .init(log2Rounds: 10, blockSize: 8, parallelism: 1)) != hash, "a salt of its own")
        #expect(!StaffPassword.verify("x", against: "scrypt$99$8$1$AA==$AA=="), "an absurd cost is refused, not computed")
        #expect(StaffPassword.problem("short") != nil && StaffPassword.problem("twelve chars") == nil)
    }

    /// RFC 6238's SHA-1 test vectors (key "12345678901234567890"), six digits.
    @Test func codesFollowRFC6238() {
        let secret = "12345678901234567890"
        #expect(StaffTOTP.code(secret: secret, step: 59 / 30) == "287082")
        #expect(StaffTOTP.code(secret: secret, step: 1_111_111_109 / 30) == "081804")
        #expect(StaffTOTP.code(secret: secret, step: 2_000_000_000 / 30) == "279037")
        let now = Date(timeIntervalSince1970: 1_111_111_109)
        #expect(StaffTOTP.matchingStep("081804", secret: secret, now: now) == 37_037_036)
        #expect(StaffTOTP.matchingStep("081 804", secret: secret, now: now) == 37_037_036)
        #expect(StaffTOTP.matchingStep("081805", secret: secret, now: now) == nil)
        #expect(StaffTOTP.matchingStep("81804", secret: secret, now: now) == nil)
        // The key people type is the base32 the enrolment URI carries.
        #expect(StaffTOTP.typedKey(secret) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(StaffTOTP.enrolmentURI(secret: secret, login: "amina", issuer: "Desk").contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"))
    }

    @Test func aQRCodeHasFinderPatterns() throws {
        let code = try #require(QRCode("otpauth://totp/Desk:amina?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Desk"))
        let n = code.modules.count
        #expect(n >= 21 && (n - 17) % 4 == 0)
        // The three finder patterns' corners are dark, their separators light.
        for (x, y) in [(0, 0), (n - 1, 0), (0, n - 1), (6, 6), (n - 7, 6)] { #expect(code.modules[y][x]) }
        #expect(!code.modules[7][7] && !code.modules[7][n - 8])
        #expect(code.svg.hasPrefix("<svg") && code.terminalText.contains("█"))
    }
}
