import GatewayActions
import Jobs
import Menus
import ServiceLifecycle
import Synchronization

/// One action's result, handed from the worker to the hop that waits for it, unless the hop
/// stopped waiting first.
final class Handoff: Sendable {
    private struct State {
        var result: Result<ActionResult, any Error>?
        var waiter: CheckedContinuation<Result<ActionResult, any Error>?, Never>?
        var abandoned = false
    }

    private let state = Mutex(State())

    /// Gives the result to the waiting hop; false when the hop stopped waiting (the result is late).
    func deliver(_ result: Result<ActionResult, any Error>) -> Bool {
        let waiter = self.state.withLock { state -> CheckedContinuation<Result<ActionResult, any Error>?, Never>?? in
            guard !state.abandoned else { return .none }
            state.result = result
            defer { state.waiter = nil }
            return .some(state.waiter)
        }
        guard let waiter else { return false }
        waiter?.resume(returning: result)
        return true
    }

    /// The result, or nil once `deadline` has passed without one.
    func wait(_ deadline: Duration) async -> Result<ActionResult, any Error>? {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: deadline)
                self.abandon()
            }
            let result = await withCheckedContinuation { continuation in
                let ready = self.state.withLock { state -> Result<ActionResult, any Error>?? in
                    if let result = state.result { return .some(result) }
                    if state.abandoned { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
            group.cancelAll()
            return result
        }
    }

    private func abandon() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Result<ActionResult, any Error>?, Never>? in
            if case .some = state.result { return nil }
            state.abandoned = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
