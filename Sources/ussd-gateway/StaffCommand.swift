import ArgumentParser
import Foundation
import Postgres
import StaffDesk
import USSDGateway
import Wallet

/// `ussd-gateway staff`: the staff desk's accounts, made by the schema's owner.
struct StaffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: "The staff desk's accounts: create one (as the schema's owner), list them.", subcommands: [Create.self, Reset.self, List.self]
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
            print("created \(self.login): \(role.title), acting in the database as \(self.login) (\(role.databaseGroup))")
            StaffCommand.printSignIn(created, issuer: config.desk.settings.issuer)
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Break-glass, as the schema's owner: a new password (from STAFF_PASSWORD, else generated) and a new second factor for a member \
                of staff, every session of theirs ended, the account enabled and unlocked; both printed once.
                """
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The member's login.") var login: String

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let password = ProcessInfo.processInfo.environment["STAFF_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            let reset = try await withPostgres(config, doing: "resetting the member of staff") { postgres in
                try await StaffDirectory.reset(owner: postgres, login: self.login, password: password)
            }
            print("reset \(self.login): every session ended")
            StaffCommand.printSignIn(reset, issuer: config.desk.settings.issuer)
        }
    }

    /// The password (when generated) and the second factor's key, QR code and URI, printed once.
    static func printSignIn(_ created: StaffDirectory.Created, issuer: String) {
        let login = created.member.login
        if let password = created.password { print("password (shown once): \(password)") }
        let key = StaffTOTP.typedKey(created.totpSecret)
        print("second factor (shown once): scan the code with an authenticator app, or type the key \(key) (oathtool --totp -b \(key) prints a code)")
        if let code = QRCode(StaffTOTP.enrolmentURI(secret: created.totpSecret, login: login, issuer: issuer)) { print(code.terminalText) }
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
