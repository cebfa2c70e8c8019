import ArgumentParser
import Foundation
import Postgres
import USSDGateway
import Wallet

/// `ussd-gateway db login NAME --role ROLE`: a login for the gateway, the audit job or a person.
struct DBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Database logins, as the schema's owner (after `migrate`).", subcommands: [Login.self]
    )

    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create a login in one of the group roles (or add an existing one to it): ussd_app for `serve`, ussd_report for reports and the ledger audit, ussd_operator for support staff who ask, ussd_approver for those who decide, ussd_desk for the staff desk (DESK_DATABASE_URL). The password, if any, is read from DB_LOGIN_PASSWORD, never from the command line."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The login's name: lower-case letters, digits and _.") var name: String
        @Option(help: "ussd_app, ussd_report, ussd_operator, ussd_approver, or ussd_desk for the staff desk's own login.") var role: String

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let password = ProcessInfo.processInfo.environment["DB_LOGIN_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            let outcome = try await withPostgres(config, doing: "creating the login") { postgres in
                try await DatabaseRoles.createLogin(postgres, name: self.name, group: self.role, password: password)
            }
            print("\(outcome == .created ? "created" : "updated") login \(self.name) in \(self.role)" + (password == nil ? " (no password)" : ""))
        }
    }
}
