import Metrics
import NIOPosix

/// A bounded pool of connections over a blocking C client library.
///
/// Every blocking call runs on the pool's own `NIOThreadPool`, with one thread per connection, so a
/// slow server parks one of those threads and never a Swift concurrency or NIO event-loop thread.
/// When every connection is leased, callers queue in order and fail with
/// ``ConnectionPoolError/acquireTimeout(pool:waited:)`` once `acquireTimeout` has passed.
public final class ConnectionPool<Connection: PoolableConnection>: Sendable {
    /// The most connections open at once.
    public let size: Int
    private let threads: OnDemandThreadPool
    private let leases: LeasePool<Lease>
    /// How long each call waited for a connection (`db_pool_wait_duration_seconds{pool}`), to the
    /// process's metrics system: a pool too small for its load shows here before it times out.
    private let waits: Metrics.Timer

    /// A connection handed to one caller; `@unchecked Sendable` because the pool guarantees it is
    /// leased to one caller at a time and only touched on pool threads, one call after another.
    public struct Lease: @unchecked Sendable {
        fileprivate let connection: Connection
    }

    /// Creates the pool; its threads start with the first call, and connections are made by
    /// `makeConnection` now and connect lazily on their first call.
    public init(name: String, size: Int, acquireTimeout: Duration, makeConnection: () -> Connection) {
        precondition(size > 0, "a pool needs at least one connection")
        self.size = size
        self.threads = OnDemandThreadPool(numberOfThreads: size)
        self.leases = LeasePool(name: name, resources: (0..<size).map { _ in Lease(connection: makeConnection()) }, acquireTimeout: acquireTimeout)
        self.waits = Metrics.Timer(label: "db_pool_wait_duration_seconds", dimensions: [("pool", name)])
    }

    /// The pool's name in errors and logs.
    public var name: String { self.leases.name }

    /// Runs `body` with a leased connection and returns it to the pool afterwards, even on throw.
    public func withConnection<Result: Sendable>(_ body: (Lease) async throws -> Result) async throws -> Result {
        let lease: Lease
        if let free = self.leases.tryAcquire() {
            lease = free
            self.waits.recordNanoseconds(0)
        } else {
            // Timed also when the wait ends in a timeout: the worst waits are the ones to see.
            let start = ContinuousClock.now
            defer { self.waits.record(duration: ContinuousClock.now - start) }
            lease = try await self.leases.acquire()
        }
        defer { self.leases.release(lease) }
        return try await body(lease)
    }

    /// Runs one blocking call with the leased connection on a pool thread.
    public func run<Result: Sendable>(
        _ lease: Lease,
        _ body: @escaping @Sendable (Connection) throws -> Result
    ) async throws -> Result {
        try await self.threads.run { try body(lease.connection) }
    }

    /// Leases a connection for one blocking call.
    public func run<Result: Sendable>(_ body: @escaping @Sendable (Connection) throws -> Result) async throws -> Result {
        try await self.withConnection { lease in try await self.run(lease, body) }
    }

    /// Connections leased right now and callers waiting, for metrics and tests.
    public var usage: (leased: Int, waiting: Int) { self.leases.usage }

    /// Refuses new callers, waits for leased connections to come back, closes every connection
    /// and stops the threads. Safe to call more than once.
    public func shutdown() async {
        for lease in await self.leases.shutdown() {
            try? await self.threads.run { lease.connection.close() }
        }
        await self.threads.shutdown()
    }
}
