import ServiceLifecycle

/// The sandbox's delayed work (a customer approving a prompt, a result arriving later), run by
/// the gateway's service group. At graceful shutdown whatever still waits is dropped, as a real
/// provider's callback can be: the reconciler settles what never arrived.
final class SandboxScheduler: Service, Sendable {
    private struct Job: Sendable {
        let delay: Duration
        let work: @Sendable () async -> Void
    }

    private let jobs: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation

    init() {
        (self.jobs, self.enqueue) = AsyncStream.makeStream()
    }

    /// Runs `work` after `delay`.
    func after(_ delay: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.enqueue.yield(Job(delay: delay, work: work))
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withDiscardingTaskGroup { waiting in
                    for await job in self.jobs {
                        waiting.addTask {
                            try? await Task.sleep(for: job.delay)
                            guard !Task.isCancelled else { return }
                            await job.work()
                        }
                    }
                }
            }
            try? await gracefulShutdown()
            self.enqueue.finish()
            group.cancelAll()
        }
    }
}
