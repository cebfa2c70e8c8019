import ArgumentParser
import Foundation
import Logging
import Postgres
import USSDGateway
import Wallet

/// `ussd-gateway retention run [--dry-run]`: personal data past its period removed (PRIVACY.md).
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention", abstract: "Remove personal data past its period (RETENTION_* settings).", subcommands: [Run.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Delete SMS past RETENTION_SMS_DAYS (done or sent; never pending) and refused callbacks past RETENTION_REFUSED_CALLBACK_DAYS, destroy the month keys of people with no wallet past RETENTION_UNKNOWN_SENDER_DAYS, and destroy erased customers' keys still held; in short batches. The ledger and the audit trail are never touched. Run daily (the CronJob, the systemd timer) as the schema's owner and the key store's owner."
        )
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Count what would go, and remove nothing.") var dryRun = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let retention = config.wallet.retention
            let dryRun = self.dryRun
            let (report, swept) = try await withPersonalWallet(config, doing: "retention") { wallet in
                let report = try await wallet.runRetention(retention, now: Date(), dryRun: dryRun)
                return (report, dryRun ? 0 : try await wallet.destroyErasedKeys())
            }
            let verb = dryRun ? "would remove" : "removed"
            print("\(verb): \(report.inboundSMS) inbound SMS and \(report.outboundSMS) outbound SMS older than \(retention.smsDays) days")
            print("\(verb): \(report.refusedCallbacks) refused callback(s) older than \(retention.refusedCallbackDays) days")
            print("\(verb): the keys of \(report.monthKeys.count) month(s) of people with no wallet\(report.monthKeys.isEmpty ? "" : " (" + report.monthKeys.joined(separator: ", ") + ")")")
            if !dryRun { print("destroyed: \(swept) erased customer(s)' data key(s) still held") }
        }
    }
}
