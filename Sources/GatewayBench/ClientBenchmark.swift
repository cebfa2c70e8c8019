import Basics
import Foundation
import GatewayActions
import Postgres
import Redis
import USSDGateway

/// Throughput of the Redis and Postgres wrappers under concurrency, for `gateway-bench`.
///
/// Each mirrors a reference tool run against the same server in the same run: Redis SET and GET
/// of one 3-byte value like `redis-benchmark -t get,set`, and Postgres' point select on
/// `pgbench_accounts` like `pgbench -S`.
public enum ClientBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let name: String
        public let operations: Int
        public let seconds: Double

        public init(name: String, operations: Int, seconds: Double) {
            self.name = name
            self.operations = operations
            self.seconds = seconds
        }
        public var perSecond: Double { Double(self.operations) / self.seconds }
        public var description: String {
            "\(self.name): \(self.operations) ops in \(String(format: "%.2f", self.seconds)) s = \(String(format: "%.0f", self.perSecond)) ops/s"
        }
    }

    /// SET then GET of `key:__rand_int__` (redis-benchmark's key without `-r`), `requests` each,
    /// over the client's configured connections (pipelined), not one connection per task.
    public static func redis(_ configuration: RedisConfiguration, concurrency: Int, requests: Int) async throws -> [Result] {
        let client = RedisClient(configuration: configuration)
        _ = try await client.ping()
        let set = try await self.measure("redis SET (\(configuration.poolSize) connections)", concurrency: concurrency, total: requests) { _ in
            try await client.set("key:__rand_int__", to: "xxx")
        }
        let get = try await self.measure("redis GET (\(configuration.poolSize) connections)", concurrency: concurrency, total: requests) { _ in
            _ = try await client.get("key:__rand_int__")
        }
        await client.shutdown()
        return [set, get]
    }

    /// `SELECT abalance FROM pgbench_accounts WHERE aid = $1` with random ids, like `pgbench -S`.
    public static func postgres(_ configuration: PostgresConfiguration, concurrency: Int, transactions: Int, scale: Int) async throws -> Result {
        var configuration = configuration
        configuration.poolSize = concurrency
        let client = PostgresClient(configuration: configuration)
        let accounts = 100_000 * scale
        let result = try await self.measure("postgres point select", concurrency: concurrency, total: transactions) { _ in
            let aid = Int.random(in: 1...accounts)
            let rows = try await client.query("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)")
            _ = try rows.single()?.decode(Int.self, column: 0)
        }
        await client.shutdown()
        return result
    }

    /// Runs `total` operations spread over `concurrency` tasks and times the whole; each operation
    /// gets its own index in `0..<total`.
    static func measure(
        _ name: String, concurrency: Int, total: Int,
        _ operation: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> Result {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                let share = total / concurrency + (worker < total % concurrency ? 1 : 0)
                group.addTask {
                    for index in 0..<share { try await operation(worker + index * concurrency) }
                }
            }
            try await group.waitForAll()
        }
        return Result(name: name, operations: total, seconds: (ContinuousClock.now - start).inSeconds)
    }
}
