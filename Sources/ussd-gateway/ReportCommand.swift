import ArgumentParser
import Basics
import Curl
import Foundation
import Logging
import MPesaBook
import USSDGateway

/// `ussd-gateway report daily [--date YYYY-MM-DD] [--csv|--json] [--email]`.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Reports for finance and the regulator.", subcommands: [Daily.self])

    struct Daily: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "One Nairobi day's reconciliation: deposits and payouts by status, set against the float and in-flight accounts' movements; fees; corrections; open review items; each difference with its reason. Exit 1 when anything does not reconcile; with --email, exit 3 when the mail was not delivered."
        )
        @OptionGroup var options: ConfigOptions
        @Option(help: "The day, YYYY-MM-DD (Africa/Nairobi); default yesterday there, for a morning's schedule.") var date: String?
        @Flag(help: "Print CSV (section,item,count,amount_kes), for a spreadsheet.") var csv = false
        @Flag(help: "Print JSON, for scripts.") var json = false
        @Flag(
            help:
                "Also mail it (REPORT_SMTP_URL, REPORT_EMAIL_TO, REPORT_EMAIL_FROM): the text as the body, the CSV attached. Exit 3 when it was not delivered."
        ) var email = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            if self.email, let problem = config.reportMail.problem { throw refusal("configuration error: \(problem)") }
            let date = self.date ?? DailyReport.yesterday(now: Date())
            let report = try await withPostgres(config, doing: "the daily report") { try await MPesaBook(wallet: wallet(config, $0)).dailyReport(date: date) }
            print(self.json ? try jsonText(report) : self.csv ? report.csv : report.text)
            if self.email { try await Self.deliver(report, settings: config.reportMail) }
            if !report.balanced { throw ExitCode(1) }
        }

        /// Mails `report`, saying where on standard error (standard output stays the report); exit
        /// code 3, with the reason, when the server did not take it. The SMTP URL is named without
        /// its user and password.
        static func deliver(_ report: DailyReport, settings: ReportMailSettings) async throws {
            guard let server = settings.server else { return }
            let http = CurlClient(logger: Logger(label: "report.mail"))
            let message = DailyReportMail.message(report, settings: settings, now: Date())
            let recipients = settings.recipients.map(\.value).joined(separator: ", ")
            do {
                try await http.sendMail(message, via: server)
            } catch {
                await http.shutdown()
                let also = report.balanced ? "" : " (and the day does not reconcile)"
                FileHandle.standardError.write(
                    Data("ussd-gateway: the daily report for \(report.date) was NOT delivered to \(recipients) through \(server): \(safeDescription(of: error))\(also)\n".utf8)
                )
                throw ExitCode(3)
            }
            await http.shutdown()
            let sandbox = settings.isSandbox ? " (the sandbox's mail server: GET /sandbox/mail on the development gateway)" : ""
            FileHandle.standardError.write(
                Data("ussd-gateway: mailed the daily report for \(report.date) to \(recipients) through \(server)\(sandbox), \(message.messageID)\n".utf8)
            )
        }
    }
}
