import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

@main
struct USSDGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ussd-gateway",
        abstract: "USSD/SMS wallet gateway for Africa's Talking and M-Pesa.",
        subcommands: [Serve.self, Migrate.self, DBCommand.self, Simulate.self, SandboxCommand.self, MenusCommand.self, MPesaCommand.self, SMSCommand.self, CustomerCommand.self, PINCommand.self, KeysCommand.self, RetentionCommand.self, AuditCommand.self, LedgerCommand.self, ReportCommand.self, StaffCommand.self]
    )
}
