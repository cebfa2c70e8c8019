import ConnectionPool
import Logging
import ServiceLifecycle

/// A connection leased to one caller for the length of a closure.
public struct PostgresConnection: Sendable {
    let pool: ConnectionPool<LibPQConnection>
    let lease: ConnectionPool<LibPQConnection>.Lease

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

    private func rollback() async throws {
        try await self.pool.run(self.lease) { connection in
            guard connection.inTransaction else { return }
            try connection.executeScript("ROLLBACK", reconnect: false)
        }
    }
}
