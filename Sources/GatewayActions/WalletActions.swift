import Foundation
import GatewayHTTP
import Logging
import Menus
import Wallet

/// Who runs an action and on behalf of whom: the number comes from the aggregator's callback, never
/// from what the user typed; the key makes money-moving actions exactly-once per hop.
public struct ActionContext: Sendable {
    public let msisdn: MSISDN
    /// `{sessionId}:{hop}` for USSD (the same on a retried hop), the message id for SMS.
    public let idempotencyKey: String
    public let channel: String
    /// The conversation the action belongs to: `ussd:<sessionId>` or `sms:<message id>`. A PIN-change
    /// grant is bound to it.
    public let conversation: String

    public init(msisdn: MSISDN, idempotencyKey: String, channel: String, conversation: String) {
        self.msisdn = msisdn
        self.idempotencyKey = idempotencyKey
        self.channel = channel
        self.conversation = conversation
    }
}

/// Runs the actions of ``ActionRegistry`` for the menus. A thrown error is an internal failure
/// (the user gets the localised failure page); a business refusal is an `ActionResult.failure`
/// with the code the menus map to a screen.
public protocol ActionRunner: Sendable {
    func run(_ request: ActionRequest, context: ActionContext) async throws -> ActionResult
    /// Whether `action` only looks something up (it moves nothing, changes nothing): its hop
    /// needs no claim against a copy of itself.
    func isLookup(_ action: String) -> Bool
}

/// Deposits and withdrawals through a mobile-money provider (the M-Pesa issue implements it).
public protocol MobileMoneyChannel: Sendable {
    /// Begins a deposit of `amount` to the customer's wallet (an STK push follows the reply).
    func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> ActionResult
    /// Holds `amount` and pays it out to the customer's phone.
    func withdraw(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> ActionResult
}

/// No provider configured: deposits and withdrawals answer "temporarily unavailable" (the menus'
/// `unavailable` screen) and nothing is recorded.
public struct UnavailableMobileMoney: MobileMoneyChannel {
    public init() {}
    public func deposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> ActionResult { .failure("unavailable") }
    public func withdraw(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> ActionResult { .failure("unavailable") }
}

/// The wallet behind the menus' actions.
public struct WalletActions: ActionRunner {
    let wallet: Wallet
    let mobileMoney: any MobileMoneyChannel
    let logger = Logger(label: "wallet.actions")

    public init(wallet: Wallet, mobileMoney: any MobileMoneyChannel = UnavailableMobileMoney()) {
        self.wallet = wallet
        self.mobileMoney = mobileMoney
    }

    public func isLookup(_ action: String) -> Bool { action == "wallet.profile" }

    public func run(_ request: ActionRequest, context: ActionContext) async throws -> ActionResult {
        let arguments = request.arguments
        let msisdn = context.msisdn
        do {
            switch request.action {
            case "wallet.profile":
                let customer = try await self.wallet.customer(msisdn)
                return .success([
                    "name": String(customer.name.prefix(20)), "language": customer.language,
                    "status": customer.isLocked() ? "locked" : customer.status,
                ])
            case "wallet.register":
                try await self.wallet.register(
                    msisdn: msisdn, name: arguments["name"] ?? "", pin: arguments["pin"] ?? "", language: arguments["language"] ?? "en"
                )
                return .success([:])
            case "wallet.balance":
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                let balances = try await self.wallet.balances(msisdn)
                return .success(["balance": String(balances.available.cents), "savings": String(balances.savings.cents)])
            case "wallet.send":
                guard let to = Validator.normaliseMSISDN(arguments["to"] ?? "").flatMap(MSISDN.init) else {
                    return .failure("recipient_not_registered")
                }
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                let receipt = try await self.wallet.send(from: msisdn, to: to, amount: try Self.amount(arguments), key: try self.key(context))
                return .success(["balance": String(receipt.balances.available.cents), "reference": TransferReference.of(receipt.key)])
            case "wallet.save", "wallet.unsave":
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                let amount = try Self.amount(arguments)
                let receipt = request.action == "wallet.save"
                    ? try await self.wallet.save(msisdn, amount: amount, key: try self.key(context))
                    : try await self.wallet.unsave(msisdn, amount: amount, key: try self.key(context))
                if request.action == "wallet.save" {
                    await self.notice(
                        msisdn, "saved", ["amount": String(amount.cents), "savings": String(receipt.balances.savings.cents)],
                        dedupe: receipt.key + ":saved"
                    )
                }
                return .success(["balance": String(receipt.balances.available.cents), "savings": String(receipt.balances.savings.cents)])
            case "wallet.statement":
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                return .success(["statement": Self.statement(try await self.wallet.statement(msisdn, limit: 5))])
            case "wallet.verifyPin":
                try await self.wallet.grantPINChange(msisdn, pin: arguments["pin"] ?? "", conversation: context.conversation)
                return .success([:])
            case "wallet.changePin":
                try await self.wallet.changePIN(msisdn, conversation: context.conversation, new: arguments["new_pin"] ?? "")
                await self.notice(msisdn, "pin_changed", [:], dedupe: context.idempotencyKey + ":pin_changed")
                return .success([:])
            case "wallet.setLanguage":
                try await self.wallet.setLanguage(msisdn, language: arguments["language"] ?? "")
                return .success([:])
            case "mpesa.deposit":
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                return try await self.mobileMoney.deposit(msisdn, amount: try Self.amount(arguments), key: try self.key(context))
            case "mpesa.withdraw":
                try await self.wallet.verifyPIN(msisdn, pin: arguments["pin"] ?? "")
                return try await self.mobileMoney.withdraw(msisdn, amount: try Self.amount(arguments), key: try self.key(context))
            default:
                throw ActionError.unknownAction(request.action)
            }
        } catch let error as WalletError {
            if case .locked(let until) = error {
                // Once per lock: the same lock gives the same key.
                // Bounded before it meets arithmetic: a lock "until an operator unlocks" is a century.
                let minutes = Int(min(max(until.timeIntervalSinceNow / 60, 1), 100_000).rounded(.up))
                var params = ["minutes": String(minutes)]
                if minutes > 24 * 60 { params["reason"] = "permanent" }
                await self.notice(msisdn, "account_locked", params, dedupe: "locked:\(msisdn.value):\(Int(until.timeIntervalSince1970))")
            }
            switch error {
            case .wrongPIN(let left): return .failure(error.code, ["attempts_left": String(left)])
            case .invalidArgument: throw error
            default: return .failure(error.code)
            }
        }
    }

    /// Queues an SMS notice; a failure to queue is logged, never the user's problem.
    private func notice(_ msisdn: MSISDN, _ template: String, _ params: [String: String], dedupe: String) async {
        do {
            try await self.wallet.queueNotice(msisdn, template: template, params: params, dedupe: dedupe)
        } catch {
            self.logger.warning("SMS notice not queued", metadata: ["template": .string(template), "error": .string(safeDescription(of: error))])
        }
    }

    private func key(_ context: ActionContext) throws -> IdempotencyKey {
        guard let key = IdempotencyKey(context.idempotencyKey) else { throw ActionError.badKey }
        return key
    }

    private static func amount(_ arguments: [String: String]) throws -> Amount {
        guard let text = arguments["amount"], let cents = Int64(text), cents > 0 else { throw ActionError.badAmount }
        return Amount(cents: cents)
    }

    /// The last movements in at most 120 characters: `21/11 -300.00 0722000111`, newest first.
    static func statement(_ entries: [StatementEntry]) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi") ?? .gmt
        var lines: [String] = []
        var length = 0
        for entry in entries {
            let day = calendar.dateComponents([.day, .month], from: entry.at)
            let sign = entry.direction == .incoming ? "+" : "-"
            let party = entry.counterparty.map { "0" + $0.value.dropFirst(3) } ?? entry.kind
            let line = String(format: "%02d/%02d ", day.day ?? 0, day.month ?? 0) + sign + entry.amount.description + " " + party
            if length + line.count + (lines.isEmpty ? 0 : 1) > 120 { break }
            length += line.count + (lines.isEmpty ? 0 : 1)
            lines.append(line)
        }
        return lines.isEmpty ? "-" : lines.joined(separator: "\n")
    }
}

enum ActionError: Error, CustomStringConvertible {
    case unknownAction(String)
    case badAmount
    case badKey

    var description: String {
        switch self {
        case .unknownAction(let name): return "no binding for action \(name)"
        case .badAmount: return "an action's amount argument is not a positive number of cents"
        case .badKey: return "the hop's idempotency key is not usable"
        }
    }
}
