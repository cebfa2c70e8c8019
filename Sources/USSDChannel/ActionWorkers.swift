import GatewayActions
import Jobs
import Menus
import ServiceLifecycle
import Synchronization

/// Runs the menus' actions for hops, so an action slower than the hop deadline can finish after
/// its hop was answered: as a `Service` it owns every such action and drains them at graceful
/// shutdown (no task outlives the service group).
public final class ActionWorkers: Service, Sendable {
    private let queue = JobQueue(atShutdown: .finish)

    public init() {}

    public func run() async throws {
        await self.queue.run()
    }

    /// Runs `work` and waits for it at most `deadline`: its result, or nil when the deadline came
    /// first, in which case `late` gets the result once it is there.
    func run(
        within deadline: Duration, _ work: @escaping @Sendable () async throws -> ActionResult,
        late: @escaping @Sendable (Result<ActionResult, any Error>) async -> Void
    ) async throws -> ActionResult? {
        let handoff = Handoff()
        let job: @Sendable () async -> Void = {
            let result: Result<ActionResult, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            if !handoff.deliver(result) { await late(result) }
        }
        if !self.queue.add(job) {
            // Shutting down: nobody drains the queue any more, so the hop waits for its action.
            await job()
        }
        return try await handoff.wait(deadline)?.get()
    }
}

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
