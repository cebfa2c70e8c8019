import Basics
import Menus
import Wallet

/// Every action the menus may name, each in one place: the gateway refuses to start on a menus
/// file that names anything else. Amounts are integer cents.
public enum ActionTable {
    static let pinErrors: Set<String> = ["wrong_pin", "locked", "not_registered", "pin_reset"]
    static let money = MenuDocument.VariableSpec(maxLength: 12)
    /// A refusal during a PIN reset's cooling-off names when it ends: `07 Dec 14:30` (Nairobi time).
    static let coolingOff: [String: [String: MenuDocument.VariableSpec]] = ["cooling_off": ["until": .init(maxLength: 12)]]

    /// The contracts, for `menus lint`.
    public static var specs: [ActionSpec] { Self.all.map(\.spec) }

    static let byName = Dictionary(uniqueKeysWithValues: Self.all.map { ($0.spec.name, $0) })

    public static let all: [ActionBinding] = [
        ActionBinding(
            ActionSpec(
                name: "wallet.profile", arguments: ["msisdn"],
                results: ["name": .init(maxLength: 20), "language": .init(maxLength: 2), "status": .init(maxLength: 10)], errors: ["not_registered"]
            ), isLookup: true
        ) { actions, _, context in
            let customer = try await actions.wallet.profile(context.msisdn)
            // What the home route acts on first: a PIN to set, a lock, a block.
            let status = customer.pinResetRequired ? "reset_pin" : customer.isLocked() ? "locked" : customer.isBlocked ? "blocked" : customer.status.rawValue
            return .success(["name": String((customer.name ?? "").prefix(20)), "language": customer.language, "status": status])
        },
        ActionBinding(ActionSpec(name: "wallet.register", arguments: ["msisdn", "name", "language", "pin", "privacy"], errors: ["weak_pin", "already_registered"])) {
            actions, request, context in
            let arguments = request.arguments
            // The privacy notice's version the registration screen told of, recorded as accepted.
            try await actions.wallet.register(
                msisdn: context.msisdn, name: arguments["name"] ?? "", pin: arguments["pin"] ?? "", language: arguments["language"] ?? "en",
                privacyNotice: arguments["privacy"].flatMap { $0.isEmpty ? nil : $0 })
            return .success([:])
        },
        ActionBinding(ActionSpec(name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": money, "savings": money], errors: pinErrors)) {
            actions, request, context in
            try await actions.verifyPIN(request, context)
            let balances = try await actions.wallet.balances(context.msisdn)
            return .success(["balance": String(balances.available.cents), "savings": String(balances.savings.cents)])
        },
        // The fee a movement of `kind` (`p2p`, `withdrawal`) and `amount` pays, for the
        // confirmation screen before the PIN is asked (Kenya's charge-disclosure rule). No
        // database: the tariff is in memory.
        ActionBinding(
            ActionSpec(name: "wallet.fee", arguments: ["kind", "amount"], results: ["fee": money, "total": money], errors: ["limit_exceeded"]), isLookup: true
        ) { actions, request, _ in
            let amount = try WalletActions.amount(request).cents
            guard let kind = request.arguments["kind"], Tariff.kinds.contains(kind) else { throw ActionError.unknownAction("wallet.fee of \(request.arguments["kind"] ?? "nothing")") }
            guard let fee = actions.tariff.fee(kind, cents: amount) else { return .failure("limit_exceeded") }
            return .success(["fee": String(fee), "total": String(amount + fee)])
        },
        ActionBinding(
            ActionSpec(
                name: "wallet.send", arguments: ["msisdn", "to", "amount", "pin"],
                results: ["balance": money, "reference": .init(maxLength: 10), "fee": money],
                errors: pinErrors.union([
                    "insufficient_funds", "recipient_not_registered", "same_account", "limit_exceeded", "blocked", "recipient_limit", "cooling_off",
                ]),
                errorResults: Self.coolingOff
            )
        ) { actions, request, context in
            guard let to = MSISDN(parsing: request.arguments["to"] ?? "", plan: actions.plan) else { return .failure("recipient_not_registered") }
            let amount = try WalletActions.amount(request)
            // The same tariff the confirmation screen showed; an amount above it is refused.
            guard let fee = actions.tariff.fee("p2p", cents: amount.cents) else { return .failure("limit_exceeded") }
            // The PIN first (checked with the movement when it can be); after a PIN reset, a large
            // send waits out the cooling-off window.
            let receipt = try await actions.wallet.send(
                from: context.msisdn, to: to, amount: amount, fee: Amount(cents: fee), key: try WalletActions.key(context), pin: request.arguments["pin"] ?? ""
            )
            return .success([
                "balance": String(receipt.balances.available.cents), "reference": TransferReference.of(receipt.key), "fee": String(receipt.fee.cents),
            ])
        },
        ActionBinding(Self.savingsSpec("wallet.save")) { actions, request, context in
            let (amount, receipt) = try await actions.moveSavings(request, context) { try await $0.save($1, amount: $2, key: $3) }
            await actions.notice(
                context.msisdn, "saved", ["amount": String(amount.cents), "savings": String(receipt.balances.savings.cents)], dedupe: receipt.key + ":saved"
            )
            return Self.balances(receipt)
        },
        ActionBinding(Self.savingsSpec("wallet.unsave")) { actions, request, context in
            Self.balances(try await actions.moveSavings(request, context) { try await $0.unsave($1, amount: $2, key: $3) }.1)
        },
        ActionBinding(
            ActionSpec(name: "wallet.statement", arguments: ["msisdn", "pin"], results: ["statement": .init(maxLength: 120)], errors: pinErrors.union(["blocked"]))
        ) { actions, request, context in
            try await actions.verifyActivePIN(request, context)
            return .success(["statement": StatementText.of(try await actions.wallet.statement(context.msisdn, limit: 5))])
        },
        // Grants one PIN change to this conversation, in the database (nothing secret goes to the session).
        ActionBinding(ActionSpec(name: "wallet.verifyPin", arguments: ["msisdn", "pin"], errors: pinErrors.union(["blocked"]))) { actions, request, context in
            if try await actions.wallet.customer(context.msisdn).isBlocked { return .failure("blocked") }
            try await actions.wallet.grantPINChange(context.msisdn, pin: request.arguments["pin"] ?? "", conversation: context.conversation)
            return .success([:])
        },
        ActionBinding(ActionSpec(name: "wallet.changePin", arguments: ["msisdn", "new_pin"], errors: ["weak_pin", "token_expired", "locked", "not_registered"])) {
            actions, request, context in
            try await actions.wallet.changePIN(context.msisdn, conversation: context.conversation, new: request.arguments["new_pin"] ?? "")
            await actions.notice(context.msisdn, "pin_changed", [:], dedupe: context.idempotencyKey + ":pin_changed")
            return .success([:])
        },
        // The new PIN after an operator's reset (`customer reset-pin`): no old PIN to check.
        ActionBinding(ActionSpec(name: "wallet.resetPin", arguments: ["msisdn", "new_pin"], errors: ["weak_pin", "token_expired", "not_registered"])) {
            actions, request, context in
            try await actions.wallet.completePINReset(context.msisdn, new: request.arguments["new_pin"] ?? "")
            await actions.notice(context.msisdn, "pin_changed", [:], dedupe: context.idempotencyKey + ":pin_changed")
            return .success([:])
        },
        ActionBinding(ActionSpec(name: "wallet.setLanguage", arguments: ["msisdn", "language"], errors: ["not_registered"])) { actions, request, context in
            try await actions.wallet.setLanguage(context.msisdn, language: request.arguments["language"] ?? "")
            return .success([:])
        },
        ActionBinding(
            ActionSpec(name: "mpesa.deposit", arguments: ["msisdn", "amount", "pin"], errors: pinErrors.union(["limit_exceeded", "unavailable", "blocked"]))
        ) { actions, request, context in
            try await actions.verifyActivePIN(request, context)
            let outcome = try await actions.mobileMoney.deposit(context.msisdn, amount: try WalletActions.amount(request), key: try WalletActions.key(context))
            return Self.result(outcome)
        },
        ActionBinding(
            ActionSpec(
                name: "mpesa.withdraw", arguments: ["msisdn", "amount", "pin"], results: ["balance": money, "fee": money],
                errors: pinErrors.union(["insufficient_funds", "limit_exceeded", "unavailable", "blocked", "cooling_off"]),
                errorResults: Self.coolingOff
            )
        ) { actions, request, context in
            let amount = try WalletActions.amount(request)
            guard let fee = actions.tariff.fee("withdrawal", cents: amount.cents) else { return .failure("limit_exceeded") }
            try await actions.wallet.checkCoolingOff(try await actions.verifyActivePIN(request, context), amount: amount)
            let outcome = try await actions.mobileMoney.withdraw(context.msisdn, amount: amount, fee: Amount(cents: fee), key: try WalletActions.key(context))
            return Self.result(outcome, fee: fee)
        },
    ]

    /// Saving and unsaving: the same contract, money the other way.
    static func savingsSpec(_ name: String) -> ActionSpec {
        ActionSpec(
            name: name, arguments: ["msisdn", "amount", "pin"], results: ["balance": money, "savings": money],
            errors: pinErrors.union(["insufficient_funds", "limit_exceeded", "blocked"])
        )
    }

    /// The customer's balances after a movement, in cents.
    static func balances(_ receipt: TransferReceipt) -> ActionResult {
        .success(["balance": String(receipt.balances.available.cents), "savings": String(receipt.balances.savings.cents)])
    }

    /// A provider's outcome in the menus' words.
    static func result(_ outcome: MobileMoneyOutcome, fee: Int64? = nil) -> ActionResult {
        switch outcome {
        case .prompted: return .success([:])
        case .paying(let available): return .success(["balance": String(available.cents)].merging(fee.map { ["fee": String($0)] } ?? [:]) { $1 })
        case .outsideLimits: return .failure("limit_exceeded")
        case .unavailable: return .failure("unavailable")
        }
    }
}
