import ServiceLifecycle

/// Work a request hands on to finish after its reply (an STK push after the USSD session ends, an
/// action past the hop deadline, a simulated provider's callback), run by the service that owns
/// the queue: no such task outlives the service group.
public final class JobQueue: Sendable {
    /// What graceful shutdown does with work still queued or running.
    public enum AtShutdown: Sendable {
        /// Finish it: it may move money or owe a customer a message.
        case finish
        /// Drop it: a simulation whose callbacks may as well never come.
        case drop
    }

    public typealias Job = @Sendable () async -> Void

    private let atShutdown: AtShutdown
    private let jobs: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation

    public init(atShutdown: AtShutdown = .finish) {
        self.atShutdown = atShutdown
        (self.jobs, self.enqueue) = AsyncStream.makeStream()
    }

    /// Queues `job`; false once the queue has stopped taking work (the service is shutting down).
    @discardableResult
    public func add(_ job: @escaping Job) -> Bool {
        if case .terminated = self.enqueue.yield(job) { return false }
        return true
    }

    /// Runs queued jobs until graceful shutdown, then stops taking new ones and finishes (or drops)
    /// the rest. Call it from the owning service's `run`.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withDiscardingTaskGroup { running in
                    for await job in self.jobs { running.addTask { await job() } }
                }
            }
            try? await gracefulShutdown()
            self.enqueue.finish()
            if self.atShutdown == .drop { group.cancelAll() }
        }
    }
}
