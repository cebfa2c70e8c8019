import GatewayActions
import Menus
import NIOCore
import NIOPosix
import Synchronization

/// One action's result, handed from the action's task to the hop that waits for it, unless the
/// hop stopped waiting first.
final class Handoff: Sendable {
    private struct State {
        var result: Result<ActionResult, any Error>?
        var waiter: CheckedContinuation<Result<ActionResult, any Error>?, Never>?
        var abandoned = false
        /// The deadline's timer, cancelled when the result comes first.
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())

    /// Gives the result to the waiting hop; false when the hop stopped waiting (the result is late).
    func deliver(_ result: Result<ActionResult, any Error>) -> Bool {
        let taken = self.state.withLock { state -> (CheckedContinuation<Result<ActionResult, any Error>?, Never>?, Scheduled<Void>?)? in
            guard !state.abandoned else { return nil }
            state.result = result
            defer { (state.waiter, state.timer) = (nil, nil) }
            return (state.waiter, state.timer)
        }
        guard let (waiter, timer) = taken else { return false }
        timer?.cancel()
        waiter?.resume(returning: result)
        return true
    }

    /// The result, or nil once `deadline` has passed without one. The deadline is a timer on the
    /// caller's event loop (any loop of NIO's shared group when the caller is not on one).
    func wait(_ deadline: Duration) async -> Result<ActionResult, any Error>? {
        await withCheckedContinuation { continuation in
            let ready = self.state.withLock { state -> Result<ActionResult, any Error>?? in
                if let result = state.result { return .some(result) }
                if state.abandoned { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { return continuation.resume(returning: ready) }
            let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
            let (seconds, attoseconds) = deadline.components
            let timer = loop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) { self.abandon() }
            let keep = self.state.withLock { state in
                guard state.waiter != nil else { return false }
                state.timer = timer
                return true
            }
            if !keep { timer.cancel() }
        }
    }

    private func abandon() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Result<ActionResult, any Error>?, Never>? in
            if case .some = state.result { return nil }
            state.abandoned = true
            defer { (state.waiter, state.timer) = (nil, nil) }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
