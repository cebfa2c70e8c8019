import ArgumentParser
import Basics
import Foundation
import Logging
import MPesaBook
import Postgres
import USSDGateway
import Wallet

/// `ussd-gateway ledger ...`: the invariants checked, and corrections under four eyes.
struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The ledger: check its invariants; ask for, approve or reject corrections and reversals (maker-checker).",
        subcommands: [Audit.self, Adjust.self, Reverse.self, Requests.self, Approve.self, Reject.self]
    )

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check the ledger: balances sum to zero, no customer balance is negative, balances and holds are what the transfers make them, every hold belongs to a live payout and none is too old. Exit 1 on any breach, for cron or a Kubernetes CronJob."
        )
        @OptionGroup var options: ConfigOptions
        @Option(help: "The oldest a payout's hold may be, in hours.") var maxHoldHours = 48
        @Flag(help: "Print JSON, for scripts.") var json = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            guard (1...8760).contains(self.maxHoldHours) else { throw refusal("--max-hold-hours must be from 1 to 8760") }
            let audit = try await withPostgres(config, doing: "auditing the ledger") {
                try await MPesaBook(wallet: wallet(config, $0)).auditLedger(maxHoldAge: .seconds(self.maxHoldHours * 3600))
            }
            if self.json {
                print(try jsonText(audit))
            } else {
                for check in audit.checks {
                    print("\(check.passed ? "ok     " : "BREACH ") \(check.name)")
                    for detail in check.details { print("        \(detail)") }
                }
                for note in audit.notes { print("note    \(note)") }
                print(audit.passed ? "ledger audit passed" : "ledger audit FAILED")
            }
            if !audit.passed { throw ExitCode(1) }
        }
    }

    struct Adjust: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Ask for a correction of a customer's main account against the suspense account. It takes effect only when another operator runs `ledger approve <id>`."
        )
        @OptionGroup var options: ConfigOptions
        @Option(help: "The customer's number, in any usual Kenyan form.") var to: String
        @Option(help: "The amount in the deployment's currency (CURRENCY), e.g. 500 or 1250.50.") var amount: String
        @Flag(help: "Credit the customer from suspense (money owed to them).") var fromSuspense = false
        @Flag(help: "Debit the customer into suspense (money credited by mistake).") var toSuspense = false
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            guard self.fromSuspense != self.toSuspense else { throw refusal("give exactly one of --from-suspense and --to-suspense") }
            let msisdn = try msisdnArgument(self.to, named: "--to", plan: config.numberingPlan)
            let amount = try amountArgument(self.amount, named: "--amount", in: config.currency)
            let direction: LedgerRequest.Direction = self.fromSuspense ? .fromSuspense : .toSuspense
            try await ledgerRequest(config, self.who, doing: "asking for the correction") {
                try await $0.requestAdjustment(msisdn, amount: amount, direction: direction, by: $1)
            } said: { "request #\($0.id): \(describe($0, in: config.currency)); waiting for another operator: ledger approve \($0.id)" }
        }
    }

    struct Reverse: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Ask for a wrong send to be reversed (the amount back from the recipient; the fee is kept). It takes effect when another operator approves it, and only if the recipient still holds the money."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The send's reference: its transfer id, as `customer show` lists it.") var reference: String
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let reference = self.reference
            try await ledgerRequest(config, self.who, doing: "asking for the reversal") { try await $0.requestReversal(of: reference, by: $1) } said: {
                "request #\($0.id): \(describe($0, in: config.currency)); waiting for another operator: ledger approve \($0.id)"
            }
        }
    }

    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List corrections and reversals waiting for approval (or all of them), newest first.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Also list the decided ones.") var all = false
        @Flag(help: "Print JSON, for scripts.") var json = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let requests = try await withPostgres(config, doing: "listing requests") {
                try await wallet(config, $0).ledgerRequests(pendingOnly: !self.all)
            }
            if self.json { return print(try jsonText(requests)) }
            print(requests.isEmpty ? "no requests" : requests.map { "#\($0.id)\t\($0.status)\t\(describe($0, in: config.currency))" }.joined(separator: "\n"))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Approve a request as this login (a member of ussd_approver, not the one who asked): its transfer is posted (or the PIN reset), the customer gets an SMS, and the audit trail records both people. Above LEDGER_DUAL_APPROVAL_ABOVE it takes two approvers."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The request's id.") var id: Int64
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let id = self.id
            try await ledgerRequest(config, self.who, doing: "approving") { try await $0.approve(id, by: $1) } said: { request in
                switch (request.status, request.kind) {
                case ("pending", _):
                    return "approval recorded for #\(request.id): \(describe(request, in: config.currency)); a second approver must approve it too (above LEDGER_DUAL_APPROVAL_ABOVE)"
                case (_, .pinReset): return "approved #\(request.id): \(describe(request, in: config.currency)); the next dial sets a new PIN"
                case (_, .erase):
                    return "approved #\(request.id): \(describe(request, in: config.currency)); the wallet's personal fields and number are vacated; "
                        + "the key custodian's next `keys sweep` (nightly, in `retention run`) destroys its data key, which makes every copy unreadable"
                default: return "approved #\(request.id): \(describe(request, in: config.currency)); transfer \(request.transfer ?? "?")"
                }
            }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Turn a request down; nothing moves. Audited.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The request's id.") var id: Int64
        @OptionGroup var who: OperatorOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let id = self.id
            try await ledgerRequest(config, self.who, doing: "rejecting") { try await $0.reject(id, by: $1) } said: {
                "rejected #\($0.id): \(describe($0, in: config.currency))"
            }
        }
    }
}

/// Asks, approves or rejects a ledger request on behalf of `who`, and prints what `said` makes of
/// the request as it now stands.
func ledgerRequest(
    _ config: GatewayConfig, _ who: OperatorOptions, doing what: String,
    _ change: @escaping @Sendable (Wallet, OperatorAction) async throws -> LedgerRequest, said: (LedgerRequest) -> String
) async throws {
    let action = try who.action()
    let request = try await withPostgres(config, doing: what) { try await change(wallet(config, $0), action) }
    print(said(request))
}

/// One request in words: `adjustment: GHS 500.00 to 2332***567 from suspense, asked by ama (why)`.
/// The number is masked, as in every listing staff read (PRIVACY.md): whoever needs it whole asks
/// `customer show --reason`, which the audit trail records.
func describe(_ request: LedgerRequest, in currency: Currency) -> String {
    let amount = Currency(code: currency.code, fractions: true)!.format(request.amount ?? 0)
    let number = request.msisdn.allSatisfy(\.isNumber) ? MSISDN.masked(request.msisdn) : request.msisdn
    let what: String
    switch request.kind {
    case .adjustment:
        what =
            request.direction == .fromSuspense
            ? "adjustment: \(amount) to \(number) from suspense" : "adjustment: \(amount) from \(number) to suspense"
    case .reversal:
        what = "reversal of \(request.reference ?? "?"): \(amount) back to \(number)"
    case .pinReset:
        what = "PIN reset for \(number)"
    case .erase:
        what = "erasure of the personal data of \(number)"
    }
    var text = "\(what), asked by \(request.requestedBy) (\(request.reason))"
    if request.status == "pending" && request.approvalsNeeded > 1 { text += ", approvals \(request.approvals) of \(request.approvalsNeeded)" }
    if let decider = request.decidedBy { text += ", \(request.status) by \(decider)" }
    return text
}
