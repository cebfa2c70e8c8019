import GatewayHTTP
import Menus

/// The actions menus.json may name, with the arguments they read, the variables they set and the
/// error codes they fail with. `menus lint` checks the file against this list, and the gateway
/// refuses to start on a file that names anything else. Amounts are integer cents.
public enum ActionRegistry {
    static let pinErrors: Set<String> = ["wrong_pin", "locked", "not_registered"]
    static let money = MenuDocument.VariableSpec(maxLength: 12)

    public static let all: [ActionSpec] = [
        ActionSpec(
            name: "wallet.profile", arguments: ["msisdn"],
            results: ["name": .init(maxLength: 20), "language": .init(maxLength: 2), "status": .init(maxLength: 10)],
            errors: ["not_registered"]
        ),
        ActionSpec(name: "wallet.register", arguments: ["msisdn", "name", "language", "pin"], errors: ["weak_pin", "already_registered"]),
        ActionSpec(name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": money, "savings": money], errors: pinErrors),
        ActionSpec(
            name: "wallet.send", arguments: ["msisdn", "to", "amount", "pin"],
            results: ["balance": money, "reference": .init(maxLength: 10)],
            errors: pinErrors.union(["insufficient_funds", "recipient_not_registered", "same_account", "limit_exceeded"])
        ),
        ActionSpec(
            name: "wallet.save", arguments: ["msisdn", "amount", "pin"], results: ["balance": money, "savings": money],
            errors: pinErrors.union(["insufficient_funds", "limit_exceeded"])
        ),
        ActionSpec(
            name: "wallet.unsave", arguments: ["msisdn", "amount", "pin"], results: ["balance": money, "savings": money],
            errors: pinErrors.union(["insufficient_funds", "limit_exceeded"])
        ),
        ActionSpec(name: "wallet.statement", arguments: ["msisdn", "pin"], results: ["statement": .init(maxLength: 120)], errors: pinErrors),
        // Grants one PIN change to this session, in the database (nothing secret goes to the session).
        ActionSpec(name: "wallet.verifyPin", arguments: ["msisdn", "pin"], errors: pinErrors),
        ActionSpec(
            name: "wallet.changePin", arguments: ["msisdn", "new_pin"],
            errors: ["weak_pin", "token_expired", "locked", "not_registered"]
        ),
        ActionSpec(name: "wallet.setLanguage", arguments: ["msisdn", "language"], errors: ["not_registered"]),
        ActionSpec(
            name: "mpesa.deposit", arguments: ["msisdn", "amount", "pin"],
            errors: pinErrors.union(["limit_exceeded", "unavailable"])
        ),
        ActionSpec(
            name: "mpesa.withdraw", arguments: ["msisdn", "amount", "pin"], results: ["balance": money],
            errors: pinErrors.union(["insufficient_funds", "limit_exceeded", "unavailable"])
        ),
    ]
}
