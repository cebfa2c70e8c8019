/// How an action ended.
public enum ActionResult: Sendable, Hashable {
    case success([String: String])
    /// An error code from the action's contract (`insufficient_funds`, ...), with any variables
    /// the error screen may show (e.g. `attempts_left`).
    case failure(String, [String: String] = [:])
}
