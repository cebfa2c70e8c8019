import Jobs
import ServiceLifecycle

/// The sandbox's delayed work (a customer approving a prompt, a result arriving later), run by
/// the gateway's service group. At graceful shutdown whatever still waits is dropped, as a real
/// provider's callback can be: the reconciler settles what never arrived.
final class SandboxScheduler: Service, Sendable {
    private let queue = JobQueue(atShutdown: .drop)

    /// Runs `work` after `delay`.
    func after(_ delay: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.queue.add {
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await work()
        }
    }

    func run() async throws {
        await self.queue.run()
    }
}
