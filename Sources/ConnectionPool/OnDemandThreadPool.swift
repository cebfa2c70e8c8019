import NIOPosix
import Synchronization

/// A thread pool for blocking calls whose threads start with the first call, not when it is
/// made: building a client or a hasher starts no thread, and one that is never used never has any.
public final class OnDemandThreadPool: Sendable {
    private let pool: NIOThreadPool
    private let state = Mutex<(started: Bool, stopped: Bool)>((false, false))

    public init(numberOfThreads: Int) {
        self.pool = NIOThreadPool(numberOfThreads: numberOfThreads)
    }

    /// Starts the threads unless they run already (or the pool was shut down).
    public func start() {
        let start = self.state.withLock { state -> Bool in
            guard !state.started, !state.stopped else { return false }
            state.started = true
            return true
        }
        if start { self.pool.start() }
    }

    /// Runs the blocking `body` on one of the pool's threads.
    public func run<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        self.start()
        return try await self.pool.runIfActive(body)
    }

    /// Lets running calls finish and stops the threads; later calls fail.
    public func shutdown() async {
        let started = self.state.withLock { state -> Bool in
            state.stopped = true
            return state.started
        }
        if started { try? await self.pool.shutdownGracefully() }
    }

    deinit {
        if self.state.withLock({ $0.started && !$0.stopped }) { self.pool.shutdownGracefully { _ in } }
    }
}
