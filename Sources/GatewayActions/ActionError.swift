import Basics

/// An action request the table cannot serve: an internal failure, never the user's.
enum ActionError: LogSafeError {
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
