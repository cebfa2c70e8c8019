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
    /// The role every statement runs as (``acting(as:)``); nil: the login's own.
    public let actingRole: String?

    public init(configuration: PostgresConfiguration, logger: Logger = Logger(label: "postgres")) {
        self.configuration = configuration
        self.logger = logger
        self.actingRole = nil
        self.pool = ConnectionPool(name: "postgres", size: configuration.poolSize, acquireTimeout: configuration.acquireTimeout) {
            LibPQConnection(configuration: configuration)
        }
    }

    private init(sharing client: PostgresClient, role: String) {
        self.configuration = client.configuration
        self.logger = client.logger
        self.pool = client.pool
        self.actingRole = role
    }

    /// The same pool, every statement in a transaction that first switches to `role`
    /// (`SET LOCAL ROLE`): the staff desk's login acting as the person signed in, so the database
    /// sees and checks the person (`current_user`) and the role ends with the transaction, never
    /// left on a pooled connection. The login must be a member of `role`. Not a service of its
    /// own: the pool is the original client's to shut down.
    public func acting(as role: String) -> PostgresClient {
        PostgresClient(sharing: self, role: role)
    }

    /// `SET LOCAL ROLE`, the name quoted as an identifier. A command, not a query: it takes no
    /// snapshot, so the transaction may still set its isolation level after it.
    static func setRole(_ role: String) -> String {
        "SET LOCAL ROLE \"" + role.replacingOccurrences(of: "\"", with: "\"\"") + "\""
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
        if self.actingRole != nil { return try await self.transaction { try await $0.query(query) } }
        return try await self.pool.run { connection in try connection.execute(query, reconnect: true) }
    }

    /// How a connection of the pool reaches the server: its host, `sslmode`, and whether it is
    /// encrypted (`PQsslInUse`). Connects when no connection is open.
    public func transport() async throws -> PostgresTransport {
        try await self.pool.run { connection in try connection.transport(reconnect: true) }
    }

    /// Runs `body` with one connection held for all its statements (session settings, advisory locks).
    /// An acting client (``acting(as:)``) holds one transaction for the whole closure; a
    /// `transaction` inside it is a savepoint (of the outer transaction's isolation level).
    public func withConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await self.pool.withConnection { lease in
            let connection = PostgresConnection(pool: self.pool, lease: lease)
            guard let role = self.actingRole else { return try await body(connection) }
            return try await connection.transaction { tx in
                try await tx.executeScript(Self.setRole(role))
                return try await body(PostgresConnection(pool: self.pool, lease: lease, nested: true))
            }
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
                return try await self.pool.withConnection { lease in
                    try await PostgresConnection(pool: self.pool, lease: lease).transaction(isolation: isolation) { tx in
                        if let role = self.actingRole { try await tx.executeScript(Self.setRole(role)) }
                        return try await body(tx)
                    }
                }
            } catch let error as PostgresError where error.isTransient && attempt < maxAttempts {
                self.logger.debug("retrying transaction", metadata: ["sqlstate": "\(error.sqlState ?? "")", "attempt": "\(attempt)"])
                attempt += 1
            }
        }
    }
}
