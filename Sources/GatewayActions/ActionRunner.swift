import Menus

/// Runs the actions of ``ActionTable`` for a channel. A thrown error is an internal failure (the
/// user gets the localised failure page); a business refusal is an `ActionResult.failure` with the
/// code the menus map to a screen.
public protocol ActionRunner: Sendable {
    func run(_ request: ActionRequest, context: ActionContext) async throws -> ActionResult
    /// Whether `action` only looks something up (it moves nothing, changes nothing): its hop
    /// needs no claim against a copy of itself.
    func isLookup(_ action: String) -> Bool
}
