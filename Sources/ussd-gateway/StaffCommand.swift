import ArgumentParser
import Foundation
import Postgres
import StaffDesk
import USSDGateway
import Wallet

/// `ussd-gateway staff`: the staff desk's accounts, made by the schema's owner.
struct StaffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: "The staff desk's accounts: create one (as the schema's owner), list them.", subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Create a member of staff for the desk, run as the schema's owner (DATABASE_URL): their database role in the group their desk \
                role maps to (support, finance-maker and admin ask as ussd_operator, finance-approver decides as ussd_approver, auditor reads \
                as ussd_report), the desk's right to act as it, a password (from STAFF_PASSWORD, else generated and printed once) and a TOTP \
                secret printed once as a QR code. The member confirms it with a code at their first sign-in.
                """
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The login: lower-case letters, digits and _ (their database role's name).") var login: String
        @Option(help: "support, finance-maker, finance-approver, auditor or admin.") var role: String?
        @Option(help: "Their name as the desk shows it.") var name: String
        @Flag(help: "Same as --role admin: the first administrator.") var admin = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            guard let role = DeskRole(rawValue: self.admin ? "admin" : self.role ?? "") else {
                throw refusal("--role must be one of \(DeskRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let password = ProcessInfo.processInfo.environment["STAFF_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            let created = try await withPostgres(config, doing: "creating the member of staff") { postgres in
                try await StaffDirectory.create(owner: postgres, login: self.login, displayName: self.name, role: role, password: password)
            }
            let uri = StaffTOTP.enrolmentURI(secret: created.totpSecret, login: self.login, issuer: config.desk.settings.issuer)
            print("created \(self.login): \(role.title), acting in the database as \(self.login) (\(role.databaseGroup))")
            if let password = created.password { print("password (shown once): \(password)") }
            print("second factor (shown once): scan with an authenticator app, or type the key \(StaffTOTP.typedKey(created.totpSecret))")
            if let code = QRCode(uri) { print(code.terminalText) }
            print(uri)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The desk's accounts: login, role, second factor, state.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let members = try await withPostgres(config, doing: "listing staff") { try await StaffDirectory(postgres: $0).all() }
            for member in members {
                let state = member.disabledAt != nil ? "disabled" : member.isLocked(at: Date()) ? "locked" : "active"
                print("\(member.login)\t\(member.role.rawValue)\t\(member.totpEnrolledAt != nil ? "enrolled" : "not enrolled")\t\(state)\t\(member.displayName)")
            }
        }
    }
}
