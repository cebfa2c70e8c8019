import ArgumentParser
import Basics
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
        commandName: "sms", abstract: "SMS operations: queue a message, list the outbox.", subcommands: [Send.self, ListOutbox.self]
    )

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue an SMS as this login; the gateway's sender delivers it (see `sms outbox`). Audited.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The recipient, in any usual Kenyan form (0712345678, +254712345678, ...).") var to: String
        @Option(help: "The message.") var text: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.to, named: "--to", plan: config.numberingPlan)
            guard !self.text.isEmpty, self.text.count <= 918 else { throw refusal("--text must be 1 to 918 characters (6 segments)") }
            let action = try self.who.action()
            let id = try await withPersonalWallet(config, doing: "queueing") {
                try await SMSService.queue($0.postgres, personalData: $0.personalData, to: msisdn, text: self.text, by: action)
            }
            print("queued as outbox #\(id) to \(msisdn.value)" + (config.sms.configuration == nil ? " (AT_USERNAME/AT_API_KEY unset here: a configured gateway sends it)" : ""))
        }
    }

    struct ListOutbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "outbox", abstract: "List pending and failed messages, oldest first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "How many to list.") var limit = 50

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let entries = try await withPostgres(config, doing: "reading the outbox") { postgres in
                try await Outbox(postgres: postgres).undelivered(limit: self.limit)
            }
            let lines = entries.map { entry in
                let next = entry.nextAttemptAt.map { "next " + ISO8601DateFormatter().string(from: $0) } ?? ""
                return "#\(entry.id)\t\(entry.status.rawValue)\t\(entry.attempts) attempts\t\(MSISDN.masked(entry.recipient))\t\(entry.template)\t"
                    + (entry.status == .pending ? next : entry.lastError ?? "")
            }
            print(lines.isEmpty ? "no pending or failed messages" : lines.joined(separator: "\n"))
        }
    }
}
