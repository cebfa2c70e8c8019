import GatewayActions
import GatewayHTTP
import Menus
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Runs the menus' actions for hops, so an action slower than the hop deadline can finish after
/// its hop was answered: as a `Service` it keeps count of every such action and, at graceful
/// shutdown, stops taking new ones and waits for the rest (no action outlives the service group).
///
/// An action runs as a task of its own on the hop's event loop (when the hop runs on one), and the
/// hop waits for its result with a timer on that loop: no queue, no thread hand-off, no task that
/// only sleeps.
public final class ActionWorkers: Service, Sendable {
    private struct State {
        var running: [Int: Task<Void, Never>] = [:]
        var next = 0
        var stopping = false
        var drained: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Waits for graceful shutdown, then for the actions still running. Cancelled, it cancels them
    /// and waits for them to end.
    public func run() async throws {
        try? await gracefulShutdown()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (drained: CheckedContinuation<Void, Never>) in
                let idle = self.state.withLock { state in
                    state.stopping = true
                    if state.running.isEmpty { return true }
                    state.drained = drained
                    return false
                }
                if idle { drained.resume() }
            }
        } onCancel: {
            for task in self.state.withLock({ Array($0.running.values) }) { task.cancel() }
        }
    }

    /// Runs `work` and waits for it at most `deadline`: its result, or nil when the deadline came
    /// first, in which case `late` gets the result once it is there.
    func run(
        within deadline: Duration, _ work: @escaping @Sendable () async throws -> ActionResult,
        late: @escaping @Sendable (Result<ActionResult, any Error>) async -> Void
    ) async throws -> ActionResult? {
        let handoff = Handoff()
        let loop = MultiThreadedEventLoopGroup.currentEventLoop
        // Admitted, numbered and registered in one step: shutdown never misses a running action,
        // and the action's end (which may come first) finds it.
        let admitted = self.state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.next += 1
            let id = state.next
            let job: @Sendable () async -> Void = {
                let result: Result<ActionResult, any Error>
                do { result = .success(try await work()) } catch { result = .failure(error) }
                if !handoff.deliver(result) { await late(result) }
                self.finished(id)
            }
            state.running[id] = loop.map { loop in Task(executorPreference: EventLoopTaskExecutor(loop)) { await job() } } ?? Task { await job() }
            return true
        }
        guard admitted else {
            // Shutting down: nobody waits for late actions any more, so the hop waits for its action.
            return try await work()
        }
        return try await handoff.wait(deadline)?.get()
    }

    private func finished(_ id: Int) {
        let drained = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.running[id] = nil
            guard state.running.isEmpty, state.stopping else { return nil }
            defer { state.drained = nil }
            return state.drained
        }
        drained?.resume()
    }
}
