import ConnectionPool
import Logging
import ServiceLifecycle

/// A connection leased to one caller for the length of a closure.
public struct PostgresConnection: Sendable {
    let pool: ConnectionPool<LibPQConnection>
    let lease: ConnectionPool<LibPQConnection>.Lease
    /// Inside a transaction its client opened (an acting client's `withConnection`): a
    /// `transaction` here is a savepoint.
    var nested = false

    init(pool: ConnectionPool<LibPQConnection>, lease: ConnectionPool<LibPQConnection>.Lease, nested: Bool = false) {
        self.pool = pool
        self.lease = lease
        self.nested = nested
    }

    /// Runs one statement on this connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await self.pool.run(self.lease) { connection in
            try connection.execute(query, reconnect: !connection.inTransaction)
        }
    }

    /// Runs trusted SQL text that may hold several statements (migrations); never user input.
    public func executeScript(_ sql: String) async throws {
        try await self.pool.run(self.lease) { connection in
            try connection.executeScript(sql, reconnect: !connection.inTransaction)
        }
    }

    /// Runs `body` inside BEGIN ... COMMIT on this connection, rolling back when it throws.
    public func transaction<Result: Sendable>(
        isolation: PostgresClient.IsolationLevel = .readCommitted,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        if self.nested { return try await self.savepoint(body) }
        try await self.executeScript("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        let result: Result
        do {
            result = try await body(self)
        } catch {
            try? await self.rollback()
            throw error
        }
        do {
            try await self.executeScript("COMMIT")
        } catch {
            try? await self.rollback()
            throw error
        }
        return result
    }

    /// `body` between SAVEPOINT and RELEASE, rolled back to the savepoint when it throws.
    private func savepoint<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await self.executeScript("SAVEPOINT nested")
        do {
            let result = try await body(self)
            try await self.executeScript("RELEASE SAVEPOINT nested")
            return result
        } catch {
            try? await self.executeScript("ROLLBACK TO SAVEPOINT nested")
            throw error
        }
    }

    private func rollback() async throws {
        try await self.pool.run(self.lease) { connection in
            guard connection.inTransaction else { return }
            try connection.executeScript("ROLLBACK", reconnect: false)
        }
    }
}

/// A connection held on one of the pool's threads for the length of a blocking closure: for a
/// caller that issues statements back to back and waits on nothing else in between (group
/// commit's lanes), so no statement pays a hand-off between a task and the pool's thread.
public struct BlockingPostgresConnection {
    let connection: LibPQConnection

    /// Runs one statement (autocommit) on this connection, on the calling pool thread.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresRows {
        try self.connection.execute(query, reconnect: true)
    }
}

extension PostgresClient {
    /// Runs `body` on one of the pool's threads with one connection leased for all of it. Refused
    /// on an acting client (``PostgresClient/acting(as:)``): its statements would not switch roles.
    public func withBlockingConnection<Result: Sendable>(_ body: @escaping @Sendable (BlockingPostgresConnection) throws -> Result) async throws -> Result {
        guard self.actingRole == nil else {
            throw PostgresError(code: .usage, detail: "a blocking connection does not act as another role: use query or transaction")
        }
        return try await self.pool.run { connection in try body(BlockingPostgresConnection(connection: connection)) }
    }
}
