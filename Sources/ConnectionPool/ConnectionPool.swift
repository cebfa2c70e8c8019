import NIOConcurrencyHelpers
import NIOPosix

/// A bounded pool of connections over a blocking C client library.
///
/// Every blocking call runs on the pool's own `NIOThreadPool`, with one thread per connection, so a
/// slow server parks one of those threads and never a Swift concurrency or NIO event-loop thread.
/// When every connection is leased, callers queue in order and fail with
/// ``ConnectionPoolError/acquireTimeout(pool:waited:)`` once `acquireTimeout` has passed.
public final class ConnectionPool<Connection: PoolableConnection>: Sendable {
    /// The pool's name in errors and logs.
    public let name: String
    /// The most connections open at once.
    public let size: Int
    /// How long a caller waits for a free connection before failing.
    public let acquireTimeout: Duration

    private let threads: NIOThreadPool
    private let state: NIOLockedValueBox<State>

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Lease, any Error>
        var timer: Task<Void, Never>?
    }

    private enum Immediate { case lease(Lease), shutdown, wait(UInt64) }
    private enum Next { case handTo(Waiter), drained(CheckedContinuation<Void, Never>), nothing }

    private struct State {
        /// Connections not leased; created once, each reconnects itself when needed.
        var idle: [Lease]
        var waiters: [Waiter] = []
        var leased = 0
        var nextWaiterID: UInt64 = 0
        var isShutdown = false
        var drained: CheckedContinuation<Void, Never>?
    }

    /// A connection handed to one caller; `@unchecked Sendable` because the pool guarantees it is
    /// leased to one caller at a time and only touched on pool threads, one call after another.
    public struct Lease: @unchecked Sendable {
        fileprivate let connection: Connection
    }

    /// Creates the pool and its threads; connections are made by `makeConnection` now and connect
    /// lazily on their first call.
    public init(name: String, size: Int, acquireTimeout: Duration, makeConnection: () -> Connection) {
        precondition(size > 0, "a pool needs at least one connection")
        self.name = name
        self.size = size
        self.acquireTimeout = acquireTimeout
        self.threads = NIOThreadPool(numberOfThreads: size)
        self.threads.start()
        self.state = NIOLockedValueBox(State(idle: (0..<size).map { _ in Lease(connection: makeConnection()) }))
    }

    /// Runs `body` with a leased connection and returns it to the pool afterwards, even on throw.
    public func withConnection<Result: Sendable>(_ body: (Lease) async throws -> Result) async throws -> Result {
        let lease = try await self.acquire()
        defer { self.release(lease) }
        return try await body(lease)
    }

    /// Runs one blocking call with the leased connection on a pool thread.
    public func run<Result: Sendable>(
        _ lease: Lease,
        _ body: @escaping @Sendable (Connection) throws -> Result
    ) async throws -> Result {
        let connection = lease
        return try await self.threads.runIfActive { try body(connection.connection) }
    }

    /// Leases a connection for one blocking call.
    public func run<Result: Sendable>(_ body: @escaping @Sendable (Connection) throws -> Result) async throws -> Result {
        try await self.withConnection { lease in try await self.run(lease, body) }
    }

    /// Connections leased right now and callers waiting, for metrics and tests.
    public var usage: (leased: Int, waiting: Int) {
        self.state.withLockedValue { ($0.leased, $0.waiters.count) }
    }

    /// Refuses new callers, waits for leased connections to come back, closes every connection
    /// and stops the threads. Safe to call more than once.
    public func shutdown() async {
        let (waiters, mustWait) = self.state.withLockedValue { state -> ([Waiter], Bool) in
            if state.isShutdown { return ([], false) }
            state.isShutdown = true
            let waiters = state.waiters
            state.waiters = []
            return (waiters, state.leased > 0)
        }
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(throwing: ConnectionPoolError.shutdown(pool: self.name))
        }
        if mustWait {
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLockedValue { state -> Bool in
                    if state.leased == 0 { return true }
                    state.drained = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        let connections = self.state.withLockedValue { state -> [Lease] in
            defer { state.idle = [] }
            return state.idle
        }
        for lease in connections {
            try? await self.threads.runIfActive { lease.connection.close() }
        }
        try? await self.threads.shutdownGracefully()
    }

    private func acquire() async throws -> Lease {
        let immediate = self.state.withLockedValue { state -> Immediate in
            if state.isShutdown { return .shutdown }
            if let lease = state.idle.popLast() {
                state.leased += 1
                return .lease(lease)
            }
            state.nextWaiterID &+= 1
            return .wait(state.nextWaiterID)
        }
        let id: UInt64
        switch immediate {
        case .lease(let lease): return lease
        case .shutdown: throw ConnectionPoolError.shutdown(pool: self.name)
        case .wait(let waiterID): id = waiterID
        }

        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let outcome = self.state.withLockedValue { state -> Immediate in
                    if state.isShutdown { return .shutdown }
                    if let lease = state.idle.popLast() {
                        state.leased += 1
                        return .lease(lease)
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation, timer: nil))
                    return .wait(id)
                }
                switch outcome {
                case .lease(let lease):
                    continuation.resume(returning: lease)
                case .shutdown:
                    continuation.resume(throwing: ConnectionPoolError.shutdown(pool: self.name))
                case .wait:
                    let timeout = self.acquireTimeout
                    let timer = Task { [weak self] in
                        guard (try? await Task.sleep(for: timeout)) != nil else { return }
                        self?.failWaiter(id, with: ConnectionPoolError.acquireTimeout(pool: self?.name ?? "", waited: timeout))
                    }
                    let stillWaiting = self.state.withLockedValue { state -> Bool in
                        guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
                        state.waiters[index].timer = timer
                        return true
                    }
                    if !stillWaiting { timer.cancel() }
                }
            }
        } onCancel: {
            self.failWaiter(id, with: CancellationError())
        }
    }

    private func failWaiter(_ id: UInt64, with error: any Error) {
        let waiter = self.state.withLockedValue { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    private func release(_ lease: Lease) {
        let next = self.state.withLockedValue { state -> Next in
            if !state.waiters.isEmpty {
                return .handTo(state.waiters.removeFirst())
            }
            state.leased -= 1
            state.idle.append(lease)
            if state.leased == 0, let drained = state.drained {
                state.drained = nil
                return .drained(drained)
            }
            return .nothing
        }
        switch next {
        case .handTo(let waiter):
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: lease)
        case .drained(let continuation):
            continuation.resume()
        case .nothing:
            break
        }
    }
}
