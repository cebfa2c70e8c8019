import ConnectionPool
import Logging
import ServiceLifecycle

/// An async Postgres client over a bounded pool of libpq connections.
///
/// libpq blocks, so every statement runs on one of the pool's own threads. Statements are
/// ``PostgresQuery`` values whose interpolations are bound parameters. As a `Service` it closes
/// its pool on graceful shutdown, after in-flight transactions finish.
public final class PostgresClient: Sendable, Service {
    public let configuration: PostgresConfiguration
    let pool: ConnectionPool<LibPQConnection>
    let logger: Logger

    public init(configuration: PostgresConfiguration, logger: Logger = Logger(label: "postgres")) {
        self.configuration = configuration
        self.logger = logger
        self.pool = ConnectionPool(name: "postgres", size: configuration.poolSize, acquireTimeout: configuration.acquireTimeout) {
            LibPQConnection(configuration: configuration)
        }
    }

    /// Waits for graceful shutdown, then lets in-flight work finish and closes the pool.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Closes every connection once leased ones come back; later calls fail.
    public func shutdown() async {
        await self.pool.shutdown()
    }

    /// Connections leased and callers waiting right now.
    public var poolUsage: (leased: Int, waiting: Int) { self.pool.usage }

    /// Runs one statement on any free connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await self.pool.run { connection in try connection.execute(query, reconnect: true) }
    }

    /// How a connection of the pool reaches the server: its host, `sslmode`, and whether it is
    /// encrypted (`PQsslInUse`). Connects when no connection is open.
    public func transport() async throws -> PostgresTransport {
        try await self.pool.run { connection in try connection.transport(reconnect: true) }
    }

    /// Runs `body` with one connection held for all its statements (session settings, advisory locks).
    public func withConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await self.pool.withConnection { lease in
            try await body(PostgresConnection(pool: self.pool, lease: lease))
        }
    }

    /// Transaction isolation levels.
    public enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs `body` in one transaction: COMMIT when it returns, ROLLBACK when it throws.
    ///
    /// A serialization failure (40001) or deadlock (40P01) reruns the whole closure, up to
    /// `maxAttempts` times in all, so `body` must be safe to repeat (it only talks to the database).
    public func transaction<Result: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        maxAttempts: Int = 1,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await self.withConnection { connection in
                    try await connection.transaction(isolation: isolation, body)
                }
            } catch let error as PostgresError where error.isTransient && attempt < maxAttempts {
                self.logger.debug("retrying transaction", metadata: ["sqlstate": "\(error.sqlState ?? "")", "attempt": "\(attempt)"])
                attempt += 1
            }
        }
    }
}
