import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

struct CustomerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "customer", abstract: "Customer support.", subcommands: [Unlock.self])

    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a customer's PIN lock (the third lock in a row lasts until an operator does this); logged with who and why."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @Option(name: .customLong("operator"), help: "Who is unlocking.") var operatorName: String
        @Option(help: "Why (for the log).") var reason: String

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number")
            guard !self.operatorName.isEmpty, !self.reason.isEmpty else { throw refusal("--operator and --reason must not be empty") }
            let unlocked = try await withPostgres(config, doing: "unlocking") { try await wallet(config, $0).unlockPIN(msisdn) }
            guard unlocked else {
                FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
                throw ExitCode(1)
            }
            Logger(label: "wallet").notice(
                "PIN unlocked by an operator", metadata: ["msisdn": .string(msisdn.value), "operator": .string(self.operatorName), "reason": .string(self.reason)]
            )
            print("unlocked \(msisdn.value)")
        }
    }
}
