import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import Postgres
import Settings
import Testing
import TestSupport

@testable import USSDGateway

/// `report daily --email` as the morning's schedule runs it: the `ussd-gateway` binary, as a
/// report login, mails the day through the real libcurl client to the SMTP server of a development
/// gateway's sandbox (`make run`'s), and the mail shows at `/sandbox/mail`.
@Suite(.timeLimit(.minutes(3))) struct ReportMailTests {
    static let password = "mail-pass-7Qz9"

    /// The environment a report's schedule has: production, a report login, the mail settings.
    static func environment(database: String, smtpPort: Int) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for secret in ["PIN_PEPPER", "PIN_KEY", "PIN_KEY_FILE", "CALLBACK_TOKEN", "MPESA_CALLBACK_TOKEN", "AT_CALLBACK_TOKEN", "AT_API_KEY"] {
            environment[secret] = nil
        }
        environment["ENVIRONMENT"] = "production"
        environment["LOG_LEVEL"] = "warning"
        environment["DATABASE_URL"] = database
        environment["REPORT_SMTP_URL"] = "smtp://reporter:\(Self.password)@127.0.0.1:\(smtpPort)"
        environment["REPORT_EMAIL_TO"] = "finance@example.co.ke, auditor@example.co.ke"
        environment["REPORT_EMAIL_FROM"] = "reports@example.co.ke"
        return environment
    }

    static func report(_ arguments: [String], _ environment: [String: String]) async throws -> (code: Int32, output: String, error: String) {
        let child = try ChildProcess.start(GatewayBinary.path, ["report", "daily"] + arguments, environment: environment)
        let code = await child.wait()
        return (code, child.output, child.errorOutput)
    }

    /// The sandbox's mail, newest last, as its route lists it; and one message's raw text.
    static func mail(_ http: CurlClient, _ base: String) async throws -> [JSONValue] {
        let response = try await http.execute(CurlRequest(url: base + "/sandbox/mail", timeout: .seconds(5)))
        return try #require(JSONValue.parse(response.body)?["messages"]?.array)
    }

    static func raw(_ http: CurlClient, _ base: String, _ summary: JSONValue) async throws -> String {
        try await http.execute(CurlRequest(url: base + (summary["rawURL"]?.string ?? ""), timeout: .seconds(5))).text
    }

    /// The attachment named `filename` in a multipart message, base64 decoded.
    static func attachment(_ raw: String, named filename: String) throws -> [UInt8] {
        let part = try #require(raw.components(separatedBy: "\r\n--").first { $0.contains("filename=\"\(filename)\"") })
        let body = try #require(part.components(separatedBy: "\r\n\r\n").dropFirst().first)
        return Array(try #require(Data(base64Encoded: body.replacingOccurrences(of: "\r\n", with: ""))))
    }

    @Test func theDailyReportIsMailedWithItsCSVAndASubjectNamingWhatDoesNotReconcile() async throws {
        let smtpPort = try freeListeningPort(host: "127.0.0.1")
        let harness = try await USSDHarness.make { config in
            config.httpPort = try! freeListeningPort(host: "127.0.0.1")
            config.sandbox.mail = true
            config.sandbox.mailPort = smtpPort
        }
        let (_, _, _, recipient) = try await harness.senderAndRecipient()
        let auditor = try await TestServers.login("auditor", in: "ussd_report", to: harness.postgres.configuration).connectionString
        let environment = Self.environment(database: auditor, smtpPort: smtpPort)
        let today = try await harness.postgres.query("SELECT to_char(now() AT TIME ZONE 'Africa/Nairobi', 'YYYY-MM-DD')").single()!.decode(String.self, column: 0)
        try await harness.serve { base in
            let http = CurlClient()
            #expect(try await eventually(within: .seconds(30)) { await RawSMTP.greets(port: smtpPort) }, "the sandbox's SMTP server listens")

            // A day that reconciles: the mail goes, the command exits 0.
            let csv = try await Self.report(["--date", today, "--csv"], environment)
            #expect(csv.code == 0 && csv.output.hasPrefix("date,section,item,count,amount_kes\n"), "\(csv)")
            let sent = try await Self.report(["--date", today, "--email"], environment)
            #expect(sent.code == 0, "\(sent)")
            #expect(sent.output.contains("everything reconciles"), "standard output is still the report")
            #expect(sent.error.contains("mailed the daily report for \(today) to finance@example.co.ke, auditor@example.co.ke through smtp://127.0.0.1:\(smtpPort)"), "\(sent.error)")
            var kept = try await Self.mail(http, base)
            let first = try #require(kept.last)
            #expect(kept.count == 1)
            #expect(first["subject"]?.string == "Reconciliation \(today): reconciles")
            #expect(first["from"]?.string == "reports@example.co.ke" && first["to"]?.string == "finance@example.co.ke, auditor@example.co.ke")
            #expect(first["envelopeTo"]?.array?.compactMap(\.string) == ["finance@example.co.ke", "auditor@example.co.ke"])
            #expect(first["login"]?.string == "reporter", "the URL's user logged in")
            let raw = try await Self.raw(http, base, first)
            #expect(raw.contains("Content-Type: text/plain; charset=utf-8") && raw.contains("everything reconciles\r\n"))
            #expect(try Self.attachment(raw, named: "reconciliation-\(today).csv") == Array(csv.output.utf8), "the CSV, byte for byte")

            // A credit the float paid with no deposit behind it: the day no longer reconciles.
            try await harness.postgres.query(
                """
                INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
                SELECT 'credit-without-deposit', f.id, a.id, 120000, 'deposit', 'posted'
                FROM accounts f, accounts a JOIN customers c ON c.id = a.customer_id
                WHERE f.kind = 'mpesa_float' AND f.customer_id IS NULL AND c.msisdn = \(recipient.value) AND a.kind = 'main'
                """
            )
            let offCSV = try await Self.report(["--date", today, "--csv"], environment)
            let off = try await Self.report(["--date", today, "--email"], environment)
            #expect(offCSV.code == 1 && off.code == 1, "exit 1: it does not reconcile, though the mail went (\(off))")
            kept = try await Self.mail(http, base)
            let second = try #require(kept.last)
            #expect(kept.count == 2)
            #expect(
                second["subject"]?.string
                    == "Reconciliation \(today): DOES NOT RECONCILE — deposits credited or parked in suspense vs float out off by KES 1,200.00",
                "\(second["subject"]?.string ?? "")")
            let offRaw = try await Self.raw(http, base, second)
            #expect(offRaw.contains("NOT RECONCILED\r\n") && offRaw.contains("credit-without-deposit"))
            #expect(try Self.attachment(offRaw, named: "reconciliation-\(today).csv") == Array(offCSV.output.utf8))

            // A server that is not there: exit 3, and a line saying so that names the server without its password.
            var unreachable = environment
            let closedPort = try freeListeningPort(host: "127.0.0.1")
            unreachable["REPORT_SMTP_URL"] = "smtp://reporter:\(Self.password)@127.0.0.1:\(closedPort)"
            let failed = try await Self.report(["--date", today, "--email"], unreachable)
            #expect(failed.code == 3, "\(failed)")
            #expect(failed.error.contains("NOT delivered") && failed.error.contains("smtp://127.0.0.1:\(closedPort)") && failed.error.contains("connect"))
            for outcome in [csv, sent, offCSV, off, failed] {
                #expect(!outcome.output.contains(Self.password) && !outcome.error.contains(Self.password), "the SMTP password is never printed")
            }
            let missing = try await Self.report(["--date", today, "--email"], environment.merging(["REPORT_EMAIL_TO": ""]) { $1 })
            #expect(missing.code == 2 && missing.error.contains("REPORT_EMAIL_TO"), "\(missing)")
            await http.shutdown()
        }
        for record in harness.capture.all {
            #expect(!record.message.contains(Self.password) && !"\(record.metadata)".contains(Self.password))
        }
        await harness.finish()
    }

    /// `make run`'s wiring: in development, with no SMTP URL, the report goes to the sandbox's mail
    /// server; an SMTP URL set takes it out of the sandbox; production has no sandbox at all.
    @Test func developmentMailsTheReportToTheSandboxUnlessAnSMTPURLIsSet() throws {
        let development = ["ENVIRONMENT": "development", "HTTP_PORT": "8080"]
        let plain = try GatewayConfig.load(environment: development, serving: false)
        #expect(plain.sandbox.mail && plain.reportMail.isSandbox && plain.reportMail.problem == nil)
        #expect(plain.reportMail.server?.description == "smtp://127.0.0.1:2525" && plain.reportMail.server?.security == MailServer.Security.none)
        let moved = try GatewayConfig.load(environment: development.merging(["SANDBOX_SMTP_PORT": "2626"]) { $1 }, serving: false)
        #expect(moved.reportMail.server?.port == 2626)
        let live = try GatewayConfig.load(
            environment: development.merging(["REPORT_SMTP_URL": "smtps://reports:\(Self.password)@mail.example.com:465", "REPORT_EMAIL_TO": "finance@example.com"]) { $1 },
            serving: false)
        #expect(!live.sandbox.mail && !live.reportMail.isSandbox && live.reportMail.server?.security == .implicitTLS)
        #expect(live.reportMail.server?.description == "smtps://mail.example.com:465")
        #expect(!(try GatewayConfig.load(environment: development.merging(["SANDBOX": "off"]) { $1 }, serving: false)).sandbox.mail)

        let production = try GatewayConfig.load(environment: ["ENVIRONMENT": "production"], serving: false)
        #expect(!production.sandbox.mail && production.reportMail.server == nil && production.reportMail.problem?.variable == "REPORT_SMTP_URL")
        #expect(GatewayConfig.secretVariables.contains("REPORT_SMTP_URL"), "never handed to a menus backend")
        do {
            _ = try GatewayConfig.load(environment: ["REPORT_SMTP_URL": "https://reports:\(Self.password)@mail.example.com"], serving: false)
            Issue.record("an https URL is not an SMTP server")
        } catch {
            #expect(error.variable == "REPORT_SMTP_URL" && !error.description.contains(Self.password), "\(error)")
        }
        for bad in ["finance", "finance@example.com\r\nBcc: everyone@example.com", "a@example.com; b@example.com"] {
            #expect(throws: ConfigError.self, "\(bad)") { try GatewayConfig.load(environment: ["REPORT_EMAIL_TO": bad], serving: false) }
        }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["REPORT_EMAIL_FROM": "Reports <r@example.com>"], serving: false) }
    }
}
