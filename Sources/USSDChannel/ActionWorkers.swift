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
        var running = 0
        var stopping = false
        var drained: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Waits for graceful shutdown, then for the actions still running.
    public func run() async throws {
        try? await gracefulShutdown()
        await withCheckedContinuation { (drained: CheckedContinuation<Void, Never>) in
            let idle = self.state.withLock { state in
                state.stopping = true
                if state.running == 0 { return true }
                state.drained = drained
                return false
            }
            if idle { drained.resume() }
        }
    }

    /// Runs `work` and waits for it at most `deadline`: its result, or nil when the deadline came
    /// first, in which case `late` gets the result once it is there.
    func run(
        within deadline: Duration, _ work: @escaping @Sendable () async throws -> ActionResult,
        late: @escaping @Sendable (Result<ActionResult, any Error>) async -> Void
    ) async throws -> ActionResult? {
        let admitted = self.state.withLock { state in
            guard !state.stopping else { return false }
            state.running += 1
            return true
        }
        guard admitted else {
            // Shutting down: nobody waits for late actions any more, so the hop waits for its action.
            return try await work()
        }
        let handoff = Handoff()
        let job: @Sendable () async -> Void = {
            let result: Result<ActionResult, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            if !handoff.deliver(result) { await late(result) }
            self.finished()
        }
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop {
            Task(executorPreference: EventLoopTaskExecutor(loop)) { await job() }
        } else {
            Task { await job() }
        }
        return try await handoff.wait(deadline)?.get()
    }

    private func finished() {
        let drained = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.running -= 1
            guard state.running == 0, state.stopping else { return nil }
            defer { state.drained = nil }
            return state.drained
        }
        drained?.resume()
    }
}
