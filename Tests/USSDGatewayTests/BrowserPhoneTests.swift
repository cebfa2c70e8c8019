import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import Menus
@testable import MPesaGateway
import Postgres
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import Wallet

/// The newcomer's path, in a real browser: `ussd-gateway serve` in development with no
/// credentials (so both providers run in the embedded sandbox), and headless Chromium on
/// `/simulator` registering two numbers, depositing, sending, withdrawing, and reading both
/// balances and both SMS inboxes.
@Suite struct BrowserPhoneTests {
    /// Where the screenshot goes: `SCREENSHOT_PATH`, else `.build/screenshots/simulator.png` in
    /// the package (`make screenshot` writes the copy under docs/).
    static var screenshotPath: String {
        if let path = ProcessInfo.processInfo.environment["SCREENSHOT_PATH"], !path.isEmpty { return path }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return package.appendingPathComponent(".build/screenshots/simulator.png").path
    }

    /// The browser phone in `driver`: dials, answers, switches numbers, waiting on each reply.
    struct BrowserPhone {
        let driver: WebDriver

        func replies() async throws -> Int { Int(try await self.driver.script("return document.body.dataset.hops || '0'") as? String ?? "0") ?? 0 }

        /// Clicks `button` and waits for the gateway's reply on the screen.
        func press(_ button: String) async throws -> String {
            let before = try await self.replies()
            try await self.driver.click(button)
            _ = try await eventually(within: .seconds(30), every: .milliseconds(25)) { try await self.replies() != before }
            return try await self.driver.text("#screen")
        }

        func use(_ local: String) async throws {
            try await self.driver.type("#number", local)
            _ = try await self.driver.script("document.getElementById('number').dispatchEvent(new Event('change'))")
        }

        func call() async throws -> String { try await self.press("#call") }

        func answer(_ input: String) async throws -> String {
            try await self.driver.type("#entry", input)
            return try await self.press("#send")
        }

        /// Dials and answers each of `inputs` in turn; the last screen.
        func walk(_ inputs: [String]) async throws -> String {
            var screen = try await self.call()
            for input in inputs { screen = try await self.answer(input) }
            return screen
        }

        /// Waits (up to 30 s) until the inbox on show contains `text`.
        func inboxShows(_ text: String) async throws -> Bool {
            try await eventually(within: .seconds(30), every: .milliseconds(50)) { try await self.driver.text("#inbox").contains(text) }
        }
    }

    @Test(.enabled(if: WebDriver.available, "needs Debian's chromium and chromium-driver (make test installs them when it can)"))
    func aNewcomerMovesMoneyFromTheBrowserPhone() async throws {
        // A fresh database, migrated by the binary as `make run` does; the shared Redis.
        let database = try await TestServers.freshDatabase("browser")
        let port = try await PrivateServer.freePort()
        var environment = ProcessInfo.processInfo.environment
        for name in environment.keys where name.hasPrefix("MPESA_") || name.hasPrefix("AT_") || name.hasSuffix("CALLBACK_TOKEN") { environment[name] = nil }
        environment.merge([
            "ENVIRONMENT": "development", "HTTP_PORT": String(port), "DATABASE_URL": database.connectionString,
            "MENUS_PATH": RepoFiles.menus, "LOG_LEVEL": "notice", "SANDBOX_DELAY_MS": "300", "STK_DELAY_MS": "100",
        ]) { $1 }
        try await ChildProcess.run(GatewayBinary.path, ["migrate"], environment: environment)
        let gateway = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        let base = "http://127.0.0.1:\(port)"
        let curl = CurlClient()
        let ready = try await waitUntilReady(curl, base + "/readyz")
        try #require(ready?.status == 200, "serve never became ready: \(gateway.errorOutput)")
        #expect(ready?.text.contains("mpesa: sandbox\nsms: sandbox") == true, "no credentials: both providers in the sandbox")

        let driver = try await WebDriver.start()
        let (amina, baraka) = (freshLocal(), freshLocal())
        do {
            try await driver.go(base + "/simulator")
            _ = try await eventually(within: .seconds(30), every: .milliseconds(25)) {
                (try await driver.script("return document.body.dataset.ready || ''") as? String) == "true"
            }
            let phone = BrowserPhone(driver: driver)

            // Two newcomers register.
            try await phone.use(amina)
            #expect(try await phone.call().hasPrefix("Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name"))
            for input in ["Amina Wanjiru", "1", TypedPINs.achieng] { _ = try await phone.answer(input) }
            #expect(try await phone.answer(TypedPINs.achieng).contains("Your wallet is ready"))
            try await phone.use(baraka)
            #expect(try await phone.walk(["Baraka Otieno", "1", TypedPINs.otieno, TypedPINs.otieno]).contains("Your wallet is ready"))

            // Amina deposits 500: the sandbox approves, the callback credits, the receipt arrives.
            try await phone.use(amina)
            #expect(try await phone.walk(["2", "500", "1", TypedPINs.achieng]).contains("enter your M-Pesa PIN"))
            #expect(try await phone.inboxShows("KES 500 from M-Pesa is in your wallet"), "the deposit receipt reached Amina's inbox")
            #expect(try await phone.inboxShows("Ksh500.00 sent to WALLET 174379"), "M-Pesa's own confirmation too")

            // She sends 200 to Baraka, then withdraws 100 to M-Pesa.
            #expect(try await phone.walk(["4", baraka, "200", "1", TypedPINs.achieng]).hasPrefix("Sent KES 200 to \(masked(baraka))"))
            #expect(try await phone.walk(["3", "100", "1", TypedPINs.achieng]).contains("on its way to M-Pesa"))
            #expect(try await phone.inboxShows("KES 100 was sent to your M-Pesa"), "the withdrawal was paid and its receipt arrived")

            // Both balances, on the phone and in the ledger.
            // 500 in, 200 sent with its fee of 7, 100 out with its fee of 5.
            #expect(try await phone.walk(["1", TypedPINs.achieng]).hasPrefix("Balance: KES 188"))
            let aminaInbox = try await driver.text("#inbox")
            #expect(aminaInbox.contains("You sent KES 200 to"), "Amina's send receipt: \(aminaInbox)")
            try Data(try await driver.screenshot()).write(to: Self.prepare(Self.screenshotPath))

            try await phone.use(baraka)
            #expect(try await phone.inboxShows("You received KES 200 from"), "Baraka was told of the money he received")
            let barakaInbox = try await driver.text("#inbox")
            #expect(try await phone.walk(["1", TypedPINs.otieno]).hasPrefix("Balance: KES 200"))
            for pin in TypedPINs.all { #expect(!aminaInbox.contains(pin) && !barakaInbox.contains(pin), "no PIN in any SMS") }
        } catch {
            await driver.quit()
            gateway.signal(SIGTERM)
            _ = await gateway.wait()
            throw error
        }
        await driver.quit()

        let postgres = PostgresClient(configuration: database)
        let wallet = Wallet(postgres: postgres, pins: PINVault(key: Array("balances-only-no-pin-checked-here".utf8)))
        #expect(try await wallet.balances(MSISDN(parsing: amina, plan: .kenya)!).available == .shillings(188))
        #expect(try await wallet.balances(MSISDN(parsing: baraka, plan: .kenya)!).available == .shillings(200))
        let sum = try await postgres.query("SELECT coalesce(sum(balance), 0)::bigint FROM account_balances").single()!.decode(Int64.self, column: 0)
        #expect(sum == 0, "the ledger balances")
        await postgres.shutdown()
        await curl.shutdown()

        gateway.signal(SIGTERM)
        #expect(await gateway.wait() == 0, "serve stopped cleanly: \(gateway.errorOutput)")
        for pin in TypedPINs.all { #expect(!USSDHarness.containsToken(gateway.errorOutput, pin), "a PIN reached the gateway's log") }
        #expect(FileManager.default.fileExists(atPath: Self.screenshotPath))
    }

    static func prepare(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        return url
    }
}
