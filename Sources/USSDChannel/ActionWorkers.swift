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
