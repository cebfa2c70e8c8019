import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import MPesaBook
import Postgres
import Sandbox
@testable import StaffDesk
import Testing
import TestSupport
@testable import USSDGateway
import Wallet

/// The staff desk in headless Chromium, as staff use it: support unlocks a customer who can then
/// dial again; a maker asks and an approver decides, the money moving once; an auditor reads
/// everything and changes nothing; forms without their token or from another site are refused.
@Suite(.serialized, .enabled(if: WebDriver.available, "needs Debian's chromium and chromium-driver (make test installs them when it can)"))
struct StaffDeskBrowserTests {
    /// `DESK_SCREENSHOT_PATH`, else `.build/screenshots/desk.png` (`make screenshot` writes docs/desk.png).
    static var screenshotPath: String {
        if let path = ProcessInfo.processInfo.environment["DESK_SCREENSHOT_PATH"], !path.isEmpty { return path }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return package.appendingPathComponent(".build/screenshots/desk.png").path
    }

    /// A member of staff at the desk in the browser.
    struct Desk {
        let driver: WebDriver
        let base: String

        func open(_ path: String) async throws { try await self.driver.go(self.base + path) }
        func has(_ css: String) async throws -> Bool { try await self.driver.script("return document.querySelector(\(Self.quoted(css))) !== null") as? Bool ?? false }
        func count(_ css: String) async throws -> Int { try await self.driver.script("return document.querySelectorAll(\(Self.quoted(css))).length") as? Int ?? -1 }
        func body() async throws -> String { try await self.driver.text("body") }
        func path() async throws -> String { URL(string: try await self.driver.call("GET", "/url") as? String ?? "")?.path ?? "" }

        /// Signs in with the password and the code `code` gives for the page's key (nil when the
        /// page shows no QR code: the key is already known).
        func signIn(_ login: String, code: (_ shownKey: String?) -> String) async throws {
            try await self.open("/desk/sign-in")
            try await self.driver.type("input[name=login]", login)
            try await self.driver.type("input[name=password]", DeskRig.password)
            try await self.submit("main form button")
            #expect(try await eventually(within: .seconds(10), every: .milliseconds(25)) { try await self.has("input[name=code]") }, "to the second factor")
            let key = try await self.has("#totp-key") ? try await self.driver.text("#totp-key") : nil
            try await self.driver.type("input[name=code]", code(key))
            try await self.submit("main form button")
            #expect(try await eventually(within: .seconds(10), every: .milliseconds(25)) { try await self.has(".who") }, "signed in")
        }

        func signOut() async throws { try await self.submit(".who form button") }

        /// Clicks a form's button and waits for the page it leads to (a new document, loaded).
        func submit(_ css: String) async throws {
            _ = try await self.driver.script("window.deskBefore = true")
            try await self.driver.click(css)
            let loaded = try await eventually(within: .seconds(15), every: .milliseconds(25)) {
                (try await self.driver.script("return window.deskBefore === undefined && document.readyState === 'complete'") as? Bool) == true
            }
            #expect(loaded, "no page came after \(css)")
        }

        /// Finds the customer by `query` and opens them with `reason`.
        func openCustomer(_ query: String, reason: String) async throws {
            try await self.open("/desk/search")
            try await self.driver.type("input[name=q]", query)
            try await self.submit("main form.row button")
            try await self.driver.type("form[action$='/open'] input[name=reason]", reason)
            try await self.submit("form[action$='/open'] button")
            #expect(try await self.path().hasPrefix("/desk/customers/"))
        }

        static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "\\'") + "'" }
    }

    /// The secret behind a key typed into an authenticator (base32, RFC 4648).
    static func secret(fromKey key: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var (buffer, bits, bytes) = (0, 0, [UInt8]())
        for character in key { buffer = (buffer << 5) | alphabet.firstIndex(of: character)!; bits += 5
            if bits >= 8 { bytes.append(UInt8((buffer >> (bits - 8)) & 0xFF)); bits -= 8; buffer &= (1 << bits) - 1 }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func lockedCustomer(_ rig: DeskRig, name: String) async throws -> (String, MSISDN) {
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: name, pin: TypedPINs.achieng, shillings: 25)
        for _ in 0..<3 { _ = try? await rig.harness.wallet.verifyPIN(msisdn, pin: TypedPINs.wrong) }
        #expect(try await rig.harness.wallet.customer(msisdn).isLocked())
        return (local, msisdn)
    }

    @Test func supportEnrolsUnlocksACustomerAndTheirNextDialWorks() async throws {
        let rig = try await DeskRig.make()
        let (amina, _) = try await rig.member("amina", .support, shown: false)
        let (local, msisdn) = try await Self.lockedCustomer(rig, name: "Halima Njeri")
        try await rig.run { publicBase, admin in
            let driver = try await WebDriver.start(width: 1366, height: 900)
            let desk = Desk(driver: driver, base: admin)
            do {
                // First sign-in: the QR code and its key, shown once; the first code confirms them.
                try await desk.signIn(amina) { key in
                    StaffTOTP.code(secret: Self.secret(fromKey: key ?? ""), step: StaffTOTP.step(at: rig.harness.clock.now))
                }
                #expect(try await desk.path() == "/desk/search")
                try await desk.openCustomer(local, reason: "caller says the PIN is locked; verified by ID number")
                #expect(try await driver.text("#pin-state").hasPrefix("locked until"))
                #expect(try await driver.text("#customer-number") == msisdn.masked, "masked until asked for")
                #expect(try await desk.body().contains("Halima Njeri"))

                // A form posted from another site, and one stripped of its token: both refused.
                let unlockAction = try await driver.script("return document.querySelector('#unlock-form').action") as? String ?? ""
                try await driver.go(
                    "data:text/html,<form method=post action='\(unlockAction)'><input name=reason value=forged></form><script>document.forms[0].submit()</script>")
                _ = try await eventually(within: .seconds(10), every: .milliseconds(50)) { try await desk.body().contains("another site") }
                #expect(try await desk.body().contains("This form was sent from another site: refused."))
                try await driver.go(admin + "/desk/customers/" + (unlockAction.split(separator: "/").dropLast().last.map(String.init) ?? ""))
                try await driver.type("#unlock-form input[name=reason]", "no token")
                _ = try await driver.script("document.querySelector('#unlock-form input[name=csrf]').remove(); document.querySelector('#unlock-form').submit()")
                _ = try await eventually(within: .seconds(10), every: .milliseconds(50)) { try await desk.body().contains("no valid token") }
                #expect(try await rig.harness.wallet.customer(msisdn).isLocked(), "neither post unlocked anything")

                // The real unlock.
                try await driver.go(admin + "/desk/customers/" + (unlockAction.split(separator: "/").dropLast().last.map(String.init) ?? ""))
                try await driver.type("#unlock-form input[name=reason]", "locked after wrong PINs; caller verified by ID")
                try await desk.submit("#unlock-form button")
                #expect(try await driver.text(".notice") == "PIN unlocked: the customer can dial again.")
                #expect(try await driver.text("#pin-state") == "usable")
                #expect(try await !desk.has("#unlock-form"), "nothing left to unlock")
                try Data(try await driver.screenshot()).write(to: BrowserPhoneTests.prepare(Self.screenshotPath))
            } catch {
                await driver.quit()
                throw error
            }
            await driver.quit()

            // The customer's next dial works.
            let http = CurlClient()
            var phone = try #require(SimulatedPhone(url: publicBase + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http))
            #expect(try await phone.dial().text.hasPrefix("Welcome Halima"))
            _ = try await phone.answer("1")
            #expect(try await phone.answer(TypedPINs.achieng).text.hasPrefix("Balance: KES 25"))
            await http.shutdown()
        }
        #expect(try await rig.deskRows("desk.post_refused").contains { $0.contains("cross-site") || $0.contains("null") })
        #expect(try await rig.deskRows("desk.csrf_refused").count == 1)
        #expect(try await rig.deskRows("desk.second_factor_shown").count == 1)
        let viewed = try await rig.harness.postgres.query("SELECT actor, reason FROM audit_log WHERE action = 'customer.viewed' ORDER BY id").map {
            try $0.decode((String, String).self)
        }
        #expect(viewed.count >= 3 && viewed.allSatisfy { $0.0 == amina && $0.1 == "caller says the PIN is locked; verified by ID number" }, "\(viewed)")
        #expect(FileManager.default.fileExists(atPath: Self.screenshotPath))
        await rig.finish()
    }

    @Test func aMakerAsksAnApproverDecidesAndTheMoneyMovesOnce() async throws {
        let rig = try await DeskRig.make()
        let (chebet, chebetSecret) = try await rig.member("chebet", .financeMaker)
        let (baraka, barakaSecret) = try await rig.member("baraka", .financeApprover)
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Otieno Ouma", pin: TypedPINs.otieno, shillings: 25)
        // Baraka asked for a correction himself, on the command line (an approver may ask).
        let own = try await Wallet(postgres: rig.harness.postgres.acting(as: baraka), pins: rig.harness.pins).requestAdjustment(
            msisdn, amount: .shillings(3), direction: .fromSuspense, by: try OperatorAction(reason: "his own"))
        try await rig.run { _, admin in
            let driver = try await WebDriver.start(width: 1366, height: 900)
            let desk = Desk(driver: driver, base: admin)
            do {
                try await desk.signIn(chebet) { _ in rig.code(chebetSecret) }
                try await desk.openCustomer(local, reason: "ticket 5512: agent float error")
                try await driver.type("#adjust-form input[name=amount]", "40")
                try await driver.type("#adjust-form input[name=reason]", "ticket 5512: agent float error, credit back")
                try await desk.submit("#adjust-form button")
                #expect(try await driver.text(".notice").hasPrefix("Adjustment of KES 40.00 asked for"))
                let request = try #require(try await rig.harness.wallet.ledgerRequests().first { $0.requestedBy == chebet })

                try await desk.open("/desk/requests")
                #expect(try await driver.text("#request-\(request.id) .why-not") == "You asked for this: another person must decide it (four eyes).")
                #expect(try await !desk.has("#request-\(request.id) form"), "no approve button for the maker")
                try await desk.signOut()

                rig.harness.clock.advance(by: .seconds(30))
                try await desk.signIn(baraka) { _ in rig.code(barakaSecret) }
                try await desk.open("/desk/requests")
                #expect(try await driver.text("#request-\(own.id) .why-not") == "You asked for this: another person must decide it (four eyes).")
                try await driver.type("#request-\(request.id) input[name=reason]", "checked against the agent's float statement")
                try await desk.submit("#request-\(request.id) button[value=approve]")
                #expect(try await driver.text(".notice") == "Request #\(request.id) approved.")
                #expect(try await !desk.has("#request-\(request.id)"), "no longer waiting")
                // Approving again (a stale page, a double click, a forged post): the database says
                // it is decided, and nothing moves twice.
                let again = DeskClient(admin)
                rig.harness.clock.advance(by: .seconds(30))
                try await again.signIn(baraka) { rig.code(barakaSecret) }
                _ = try await again.get("/desk/requests")
                #expect(try await again.post("/desk/requests/\(request.id)/decide", ["decision": "approve", "reason": "again"]).header("Location") == "/desk/requests")
                _ = try await again.get("/desk/requests")
                #expect(again.page.contains("is already approved"), "\(again.page.prefix(2000))")
                await again.shutdown()
            } catch {
                await driver.quit()
                throw error
            }
            await driver.quit()
        }
        #expect(try await rig.harness.wallet.balances(msisdn).main == .shillings(65), "25 + 40, once")
        let approved = try #require(try await rig.harness.wallet.ledgerRequests(pendingOnly: false).first { $0.requestedBy == chebet })
        #expect(approved.status == "approved" && approved.decidedBy == baraka)
        #expect(try await rig.harness.wallet.ledgerRequest(own.id)?.status == "pending", "his own request still waits for another approver")
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func anAuditorSeesEverythingAndChangesNothing() async throws {
        let rig = try await DeskRig.make()
        let (zawadi, secret) = try await rig.member("zawadi", .auditor)
        let (local, msisdn) = try await Self.lockedCustomer(rig, name: "Wambui Kariuki")
        let request = try await Wallet(postgres: rig.harness.postgres.acting(as: try await rig.member("amina", .support).login), pins: rig.harness.pins)
            .requestPINReset(msisdn, by: try OperatorAction(reason: "caller verified"))
        try await rig.harness.book.keepForReview(kind: "stk", reference: "ws_CO_AUDIT", reason: ReviewItem.conflict, body: "{}", earlierResult: "failed 1032", newResult: "paid KES 25")
        let id = try await rig.harness.postgres.query("SELECT id FROM customers WHERE msisdn = \(msisdn.value)").single()!.decode(Int64.self, column: 0)
        try await rig.run { _, admin in
            let driver = try await WebDriver.start(width: 1366, height: 900)
            let desk = Desk(driver: driver, base: admin)
            do {
                try await desk.signIn(zawadi) { _ in rig.code(secret) }
                try await desk.openCustomer(local, reason: "quarterly access review")
                #expect(try await desk.body().contains("Wambui Kariuki"))
                #expect(try await desk.count("main form") == 1, "only the audited 'show number' form on the customer page")
                try await desk.open("/desk/requests")
                #expect(try await desk.has("#request-\(request.id)"))
                #expect(try await !desk.has("#request-\(request.id) form"))
                try await desk.open("/desk/review")
                let review = try await desk.body()
                #expect(review.contains("failed 1032") && review.contains("paid KES 25"), "both reports, side by side")
                #expect(try await desk.count("main form") == 0)
                try await desk.open("/desk/report")
                #expect(try await desk.body().contains("Daily reconciliation"))
                try await desk.open("/desk/audit?action=customer.")
                #expect(try await desk.body().contains("customer.viewed"))
                try await desk.open("/desk/staff")
                #expect(try await desk.body().contains(zawadi))
                #expect(try await desk.count("main form") == 0)
            } catch {
                await driver.quit()
                throw error
            }
            await driver.quit()

            // Forged posts, with a valid session and token: the server refuses every one.
            let forger = DeskClient(admin)
            rig.harness.clock.advance(by: .seconds(30))
            try await forger.signIn(zawadi) { rig.code(secret) }
            for (path, fields) in [
                ("/desk/customers/\(id)/unlock", ["reason": "x"]), ("/desk/customers/\(id)/block", ["reason": "x"]),
                ("/desk/customers/\(id)/adjust", ["reason": "x", "amount": "5", "direction": "from_suspense"]),
                ("/desk/requests/\(request.id)/decide", ["decision": "approve", "reason": "x"]), ("/desk/review/1/resolve", ["resolution": "nothing", "note": "x"]),
                ("/desk/staff/\(zawadi)/change", ["change": "sign-out", "reason": "x"]),
            ] {
                _ = try await forger.get("/desk/account")
                #expect(try await forger.post(path, fields).status == 403, "\(path)")
            }
            let csv = try await forger.get("/desk/report.csv")
            #expect(csv.status == 200 && csv.text.hasPrefix("date,section,item,count,amount_kes") && csv.header("Content-Disposition")?.contains("attachment") == true)
            await forger.shutdown()
        }
        #expect(try await rig.harness.wallet.customer(msisdn).isLocked())
        #expect(try await rig.harness.wallet.ledgerRequest(request.id)?.status == "pending")
        #expect(try await rig.deskRows("desk.forbidden").count == 6)
        await rig.finish()
    }
}
