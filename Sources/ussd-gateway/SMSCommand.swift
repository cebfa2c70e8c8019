import ArgumentParser
import Foundation
import Logging
import Postgres
import SMSChannel
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

struct SMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sms", abstract: "SMS operations: queue a message, list the outbox.", subcommands: [Send.self, Outbox.self]
    )

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue an SMS; the gateway's sender delivers it (see `sms outbox`).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The recipient, in any usual Kenyan form (0712345678, +254712345678, ...).") var to: String
        @Option(help: "The message.") var text: String

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.to, named: "--to")
            guard !self.text.isEmpty, self.text.count <= 918 else { throw refusal("--text must be 1 to 918 characters (6 segments)") }
            let id = try await withPostgres(config, doing: "queueing") { try await SMSService.queue($0, to: msisdn, text: self.text) }
            print("queued as outbox #\(id) to \(msisdn.value)" + (config.sms.configuration == nil ? " (AT_USERNAME/AT_API_KEY unset here: a configured gateway sends it)" : ""))
        }
    }

    struct Outbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pending and failed messages, oldest first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "How many to list.") var limit = 50

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let lines = try await withPostgres(config, doing: "reading the outbox") { postgres in
                try await postgres.query(
                    """
                    SELECT id, status, attempts, recipient, template, coalesce(last_error, ''),
                        CASE WHEN status = 'pending' THEN to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z' ELSE '' END
                    FROM outbox WHERE status IN ('pending', 'failed') ORDER BY id LIMIT \(self.limit)
                    """
                ).map { row in
                    let (id, status, attempts, recipient, template, error, next) = try row.decode((Int64, String, Int32, String, String, String, String).self)
                    return "#\(id)\t\(status)\t\(attempts) attempts\t\(recipient)\t\(template)\t" + (status == "pending" ? "next \(next)" : error)
                }
            }
            print(lines.isEmpty ? "no pending or failed messages" : lines.joined(separator: "\n"))
        }
    }
}
