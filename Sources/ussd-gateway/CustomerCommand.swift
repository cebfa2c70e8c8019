import ArgumentParser
import Basics
import Foundation
import Logging
import Postgres
import USSDGateway
import Wallet

struct CustomerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customer", abstract: "Customer support: look a customer up, unlock, reset a PIN, block, set a KYC tier.", subcommands: [Show.self, Unlock.self, ResetPIN.self, Block.self, Unblock.self, Tier.self, Close.self, Reopen.self, Erase.self, Export.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A customer as the support desk needs them: status, PIN lock, balances, open holds and the last 20 movements."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @Flag(help: "Print JSON, for scripts.") var json = false
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number", plan: config.numberingPlan)
            let action = try self.who.action()
            guard let overview = try await withPersonalWallet(config, doing: "looking up", { try await $0.overview(msisdn, by: action) }) else {
                FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
                throw ExitCode(1)
            }
            if self.json {
                print(try jsonText(CustomerView(overview, currency: config.currency)))
            } else {
                print(CustomerView(overview, currency: config.currency).text)
            }
        }
    }

    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a customer's PIN lock (the third lock in a row lasts until an operator does this); written to the audit trail with who and why."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number", plan: config.numberingPlan)
            let action = try self.who.action()
            let unlocked = try await withPostgres(config, doing: "unlocking") { try await wallet(config, $0).unlockPIN(msisdn, by: action) }
            guard unlocked else {
                FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
                throw ExitCode(1)
            }
            Logger(label: "wallet").notice("PIN unlocked by an operator", metadata: ["msisdn": .string(msisdn.masked)])
            print("unlocked \(msisdn.value)")
        }
    }

    struct ResetPIN: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-pin",
            abstract:
                "Ask for a customer's PIN to be reset. When an approver (`ledger approve <id>`, another person) approves it, the next dial must set a new PIN, any lock is lifted and the customer gets an SMS; large sends and withdrawals then wait out PIN_RESET_COOLDOWN_HOURS. Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number", plan: config.numberingPlan)
            try await ledgerRequest(config, self.who, doing: "asking for the PIN reset") { try await $0.requestPINReset(msisdn, by: $1) } said: {
                "request #\($0.id): \(describe($0, in: config.currency)); waiting for an approver: ledger approve \($0.id)"
            }
        }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Block a customer: they can only check their balance until unblocked; every movement is refused. The customer gets an SMS. Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            try await changeCustomer(
                self.options, self.number, self.who, doing: "blocking", done: { "blocked \($0)" },
                already: "is already blocked"
            ) { try await $0.block($1, by: $2) }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a block. The customer gets an SMS. Audited.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            try await changeCustomer(
                self.options, self.number, self.who, doing: "unblocking", done: { "unblocked \($0)" },
                already: "is not blocked"
            ) { try await $0.unblock($1, by: $2) }
        }
    }

    struct Tier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a customer in a KYC tier (one of menus.json's `tiers`; `default` for the default tier). Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @Argument(help: "The tier's name, or `default`.") var tier: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let tier = self.tier == "default" ? nil : self.tier
            try await changeCustomer(
                self.options, self.number, self.who, doing: "setting the tier", done: { "tier \(self.tier) for \($0)" },
                already: "is already in tier \(self.tier)"
            ) { try await $0.setTier($1, to: tier, by: $2) }
        }
    }
}

extension CustomerCommand {
    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a wallet that holds nothing (every account at zero, no deposit or payout in flight): every movement is refused from then on. The customer gets an SMS. Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            try await changeCustomer(self.options, self.number, self.who, doing: "closing", done: { "closed \($0)" }, already: "is already closed") {
                try await $0.close($1, by: $2)
            }
        }
    }

    struct Reopen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reopen a wallet closed by mistake (refused while its erasure waits for an approver, or once erased). Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            try await changeCustomer(self.options, self.number, self.who, doing: "reopening", done: { "reopened \($0)" }, already: "is not closed") {
                try await $0.reopen($1, by: $2)
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Everything held about a customer as JSON, for a subject access request: profile (name opened), balances, transfers, deposits, payouts, paybill payments, SMS both ways, staff requests and the audit trail; other people's numbers masked, their names withheld. Audited before it is read."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number", plan: config.numberingPlan)
            let action = try self.who.action()
            guard let exported = try await withPersonalWallet(config, doing: "exporting", { try await $0.export(msisdn, by: action) }) else {
                FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
                throw ExitCode(1)
            }
            print(exported.serialized)
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Ask for a closed wallet's personal data to be erased (a data subject's request). When an approver (`ledger approve <id>`, another person) approves it, the name, texts and payloads become unreadable everywhere, backups included, by destroying the customer's data key; the ledger keeps every transfer under a pseudonymous id. Audited."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number", plan: config.numberingPlan)
            try await ledgerRequest(config, self.who, doing: "asking for the erasure") { try await $0.requestErasure(msisdn, by: $1) } said: {
                "request #\($0.id): \(describe($0, in: config.currency)); waiting for an approver: ledger approve \($0.id)"
            }
        }
    }
}

/// One audited change to a customer from the command line: the configuration, the number and
/// who and why checked, `change` applied, and what happened printed (exit 1 for an unknown number).
func changeCustomer(
    _ options: ConfigOptions, _ number: String, _ who: OperatorOptions, doing what: String, done: (String) -> String, already: String,
    _ change: @escaping @Sendable (Wallet, MSISDN, OperatorAction) async throws -> DeskOutcome
) async throws {
    let config = try options.loadForStaff()
    bootstrapLogging(config)
    let msisdn = try msisdnArgument(number, named: "the number", plan: config.numberingPlan)
    let action = try who.action()
    let outcome = try await withPostgres(config, doing: what) { try await change(wallet(config, $0), msisdn, action) }
    switch outcome {
    case .changed: print(done(msisdn.value))
    case .unchanged: print("\(msisdn.value) \(already): nothing changed")
    case .notRegistered:
        FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
        throw ExitCode(1)
    }
}

/// `ussd-gateway audit --number N`: a customer's audit trail.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "A customer's audit trail, newest first: who did what, when, why, before and after."
    )
    @OptionGroup var options: ConfigOptions
    @Option(help: "The customer's number, in any usual Kenyan form.") var number: String
    @Option(help: "At most this many rows.") var limit = 200
    @Flag(help: "Print JSON, for scripts.") var json = false

    func run() async throws {
        let config = try self.options.loadForStaff()
        bootstrapLogging(config)
        let msisdn = try msisdnArgument(self.number, named: "--number", plan: config.numberingPlan)
        let trail = try await withPostgres(config, doing: "reading the audit trail") { try await wallet(config, $0).auditTrail(msisdn, limit: self.limit) }
        if self.json {
            print(try jsonText(trail))
            return
        }
        if trail.isEmpty { print("no audit rows for \(msisdn.value)") }
        for entry in trail {
            print("#\(entry.id) \(iso8601(entry.at)) \(entry.actor) \(entry.action)" + (entry.reason.map { " — \($0)" } ?? ""))
            if let before = entry.before { print("    before \(before)") }
            if let after = entry.after { print("    after  \(after)") }
        }
    }
}

/// What `customer show` prints.
struct CustomerView: Codable {
    struct Hold: Codable {
        let payout: String
        let amount: String
        let status: String
        let since: String
    }

    struct Movement: Codable {
        let reference: String
        let kind: String
        let direction: String
        let amount: String
        let counterparty: String?
        let at: String
    }

    let number: String
    let name: String
    let language: String
    let status: String
    let tier: String
    let pinResetRequired: Bool
    let locked: Bool
    let lockedUntil: String?
    let failedPINAttempts: Int
    let locksInARow: Int
    let registeredAt: String
    /// The deployment's currency; the amounts below are in its major units with all its decimals.
    let currency: String
    let main: String
    let savings: String
    let held: String
    let holds: [Hold]
    let movements: [Movement]

    init(_ overview: CustomerOverview, currency: Currency) {
        let exact = Currency(code: currency.code, fractions: true)!
        /// `GHS 12.50` -> `12.50`: the amount without its code, for JSON.
        func figure(_ amount: Amount) -> String { String(exact.format(amount.cents).dropFirst(exact.code.count + 1)).replacingOccurrences(of: ",", with: "") }
        self.currency = currency.code
        let customer = overview.customer
        (self.number, self.name, self.language) = (customer.msisdn.value, overview.name ?? "[erased]", customer.language)
        self.status = customer.isBlocked ? "blocked" : customer.status.rawValue
        (self.tier, self.pinResetRequired) = (customer.tier ?? "default", customer.pinResetRequired)
        (self.locked, self.lockedUntil) = (customer.isLocked(), customer.lockedUntil.map(iso8601))
        (self.failedPINAttempts, self.locksInARow, self.registeredAt) = (overview.failedPINAttempts, overview.locksInARow, iso8601(overview.registeredAt))
        (self.main, self.savings, self.held) = (figure(overview.balances.main), figure(overview.balances.savings), figure(overview.balances.held))
        self.holds = overview.holds.map { Hold(payout: $0.payout, amount: figure($0.amount), status: $0.status, since: iso8601($0.since)) }
        self.movements = overview.movements.map {
            Movement(
                reference: $0.key, kind: $0.kind, direction: $0.direction.rawValue, amount: figure($0.amount), counterparty: $0.counterparty?.value,
                at: iso8601($0.at)
            )
        }
    }

    var text: String {
        var lines = [
            "\(self.name) (\(self.number)), language \(self.language), \(self.status), tier \(self.tier), registered \(self.registeredAt)",
            self.locked
                ? "PIN locked until \(self.lockedUntil ?? "?") (\(self.locksInARow) lock(s) in a row)"
                : "PIN not locked; \(self.failedPINAttempts) failed attempt(s), \(self.locksInARow) lock(s) in a row",
            "balances: main \(self.currency) \(self.main), savings \(self.currency) \(self.savings), held \(self.currency) \(self.held)",
        ]
        if self.pinResetRequired { lines.append("PIN reset: the next dial must set a new PIN") }
        lines.append(self.holds.isEmpty ? "no open holds" : "open holds:")
        lines += self.holds.map { "  payout \($0.payout): \(self.currency) \($0.amount), \($0.status) since \($0.since)" }
        lines.append(self.movements.isEmpty ? "no movements" : "last \(self.movements.count) movements:")
        lines += self.movements.map {
            "  \($0.at) \($0.direction == "in" ? "+" : "-")\(self.currency) \($0.amount) \($0.kind)" + ($0.counterparty.map { " \($0)" } ?? "") + " ref \($0.reference)"
        }
        return lines.joined(separator: "\n")
    }
}

func iso8601(_ date: Date) -> String {
    date.formatted(.iso8601)
}

func jsonText(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
