import ConnectionPool
import Foundation
import Postgres
import Testing
import TestSupport

@Suite struct PostgresClientTests {
    @Test func valuesRoundTripWithTheirTypes() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        let when = Date(timeIntervalSince1970: 1_795_000_000.123456)
        let bytes = Data([0, 1, 2, 254, 255])
        let row = try #require(
            try await postgres.query(
                """
                SELECT \(Int64.max)::bigint, \(42)::int, \(Int32(-7))::int, \("Habari ya asubuhi ✓"), \(true), \(2.5)::float8,
                       \(when)::timestamptz, \(bytes)::bytea, \(nil as String?)::text, \(Optional(5))::bigint
                """
            ).single()
        )
        let (big, int, small, text, flag, double) = try row.decode((Int64, Int, Int32, String, Bool, Double).self)
        #expect(big == Int64.max)
        #expect(int == 42)
        #expect(small == -7)
        #expect(text == "Habari ya asubuhi ✓")
        #expect(flag)
        #expect(double == 2.5)
        let decodedDate = try row.decode(Date.self, column: 6)
        #expect(abs(decodedDate.timeIntervalSince(when)) < 0.000_001)
        #expect(try row.decode(Data.self, column: 7) == bytes)
        #expect(try row.decode(String?.self, column: 8) == nil)
        #expect(try row.decode(Int?.self, column: 9) == 5)
        let nullError = #expect(throws: PostgresError.self) { try row.decode(String.self, column: 8) }
        #expect(nullError?.code == .decoding)
        await postgres.shutdown()
    }

    @Test func timestampsDecodeInEveryServerForm() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        let row = try #require(
            try await postgres.query(
                "SELECT '2026-11-21 23:19:50.5+03:00'::timestamptz, '2026-11-21 20:19:50'::timestamp, '2026-11-21'::date, '1969-07-20 20:17:40+00'::timestamptz"
            ).single()
        )
        let expected = Date(timeIntervalSince1970: 1_795_292_390.5)
        #expect(try row.decode(Date.self, column: 0) == expected)
        #expect(try row.decode(Date.self, column: 1) == Date(timeIntervalSince1970: 1_795_292_390))
        #expect(try row.decode(Date.self, column: 2) == Date(timeIntervalSince1970: 1_795_219_200))
        #expect(try row.decode(Date.self, column: 3) == Date(timeIntervalSince1970: -14_182_940))
        await postgres.shutdown()
    }

    @Test func interpolatedValuesAreParametersNotSQL() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        try await postgres.query("CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
        let hostile = "x'); DROP TABLE notes; --"
        let query: PostgresQuery = "INSERT INTO notes (body) VALUES (\(hostile)) RETURNING id"
        #expect(query.sql == "INSERT INTO notes (body) VALUES ($1) RETURNING id")
        #expect(query.parameterCount == 1)
        try await postgres.query(query)
        let stored = try await postgres.query("SELECT body FROM notes").map { try $0.decode(String.self, column: 0) }
        #expect(stored == [hostile])
        await postgres.shutdown()
    }

    @Test func transactionCommitsOnReturnAndRollsBackOnThrow() async throws {
        struct Boom: Error {}
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        try await postgres.query("CREATE TABLE ledger (id INT PRIMARY KEY, amount BIGINT NOT NULL)")

        try await postgres.transaction { tx in
            try await tx.query("INSERT INTO ledger VALUES (1, 100)")
            try await tx.query("INSERT INTO ledger VALUES (2, 200)")
        }
        await #expect(throws: Boom.self) {
            try await postgres.transaction { tx in
                try await tx.query("INSERT INTO ledger VALUES (3, 300)")
                try await tx.query("UPDATE ledger SET amount = 0 WHERE id = 1")
                throw Boom()
            }
        }
        await #expect(throws: PostgresError.self) {
            try await postgres.transaction { tx in
                try await tx.query("INSERT INTO ledger VALUES (4, 400)")
                try await tx.query("INSERT INTO ledger VALUES (1, 1)")  // duplicate key aborts the transaction
            }
        }

        let rows = try await postgres.query("SELECT id, amount FROM ledger ORDER BY id").map { try $0.decode((Int, Int64).self) }
        #expect(rows.map(\.0) == [1, 2])
        #expect(rows.map(\.1) == [100, 200])
        #expect(postgres.poolUsage.leased == 0)
        // The connection that saw the failed transaction is clean again.
        #expect(try await postgres.query("SELECT count(*) FROM ledger").single()?.decode(Int.self, column: 0) == 2)
        await postgres.shutdown()
    }

    @Test func duplicateKeyIsATypedUniqueViolation() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        try await postgres.query("CREATE TABLE customers (msisdn TEXT CONSTRAINT customers_msisdn_key UNIQUE)")
        try await postgres.query("INSERT INTO customers VALUES (\("254712345678"))")
        let error = await #expect(throws: PostgresError.self) {
            try await postgres.query("INSERT INTO customers VALUES (\("254712345678"))")
        }
        #expect(error?.sqlState == "23505")
        #expect(error?.isUniqueViolation == true)
        #expect(error?.constraint == "customers_msisdn_key")
        #expect(error?.description.contains("254712345678") == false, "the key's value stays out of the description")
        #expect(error?.debugDescription.contains("254712345678") == true)
        await postgres.shutdown()
    }

    @Test func deadlockSurfacesAsTypedAndRetriesSucceed() async throws {
        let configuration = try await TestServers.freshDatabase()
        let postgres = PostgresClient(configuration: configuration)
        try await postgres.query("CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)")
        try await postgres.query("INSERT INTO accounts VALUES (1, 0), (2, 0)")

        // Two transactions lock the rows in opposite orders, each waiting until the other holds its first lock.
        let barrier = Barrier(parties: 2)
        func transfer(first: Int, second: Int, attempts: Int) async throws {
            let attempt = Counter()
            try await postgres.transaction(maxAttempts: attempts) { tx in
                try await tx.query("UPDATE accounts SET balance = balance + 1 WHERE id = \(first)")
                if attempt.next() == 1 { await barrier.arrive() }
                try await tx.query("UPDATE accounts SET balance = balance - 1 WHERE id = \(second)")
            }
        }
        let outcomes = await withTaskGroup(of: PostgresError?.self) { group in
            group.addTask { do { try await transfer(first: 1, second: 2, attempts: 1); return nil } catch { return error as? PostgresError } }
            group.addTask { do { try await transfer(first: 2, second: 1, attempts: 1); return nil } catch { return error as? PostgresError } }
            return await group.reduce(into: [PostgresError?]()) { $0.append($1) }
        }
        #expect(outcomes.compactMap { $0 }.count == 1, "exactly one side is chosen as the deadlock victim")
        #expect(outcomes.compactMap { $0 }.first?.isDeadlock == true)

        let retried = Barrier(parties: 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (first, second) in [(1, 2), (2, 1)] {
                group.addTask {
                    let attempt = Counter()
                    try await postgres.transaction(maxAttempts: 3) { tx in
                        try await tx.query("UPDATE accounts SET balance = balance + 1 WHERE id = \(first)")
                        if attempt.next() == 1 { await retried.arrive() }
                        try await tx.query("UPDATE accounts SET balance = balance - 1 WHERE id = \(second)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let total = try await postgres.query("SELECT sum(balance) FROM accounts").single()?.decode(Int.self, column: 0)
        #expect(total == 0)
        await postgres.shutdown()
    }

    @Test func serializationFailuresAreRetried() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        try await postgres.query("CREATE TABLE counter (id INT PRIMARY KEY, value INT NOT NULL)")
        try await postgres.query("INSERT INTO counter VALUES (1, 0)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await postgres.transaction(isolation: .serializable, maxAttempts: 50) { tx in
                        let value = try await tx.query("SELECT value FROM counter WHERE id = 1").single()!.decode(Int.self, column: 0)
                        // Work between the read and the write, as an application's: the overlap that
                        // makes serializable transactions conflict and retry.
                        try await Task.sleep(for: .milliseconds(5))
                        try await tx.query("UPDATE counter SET value = \(value + 1) WHERE id = 1")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await postgres.query("SELECT value FROM counter").single()?.decode(Int.self, column: 0) == 8, "no lost update")
        await postgres.shutdown()
    }

    @Test func statementTimeoutCancelsSlowQueries() async throws {
        var configuration = try await TestServers.freshDatabase()
        configuration.statementTimeout = .milliseconds(200)
        let postgres = PostgresClient(configuration: configuration)
        // pg_sleep: a query slower than the timeout, played by the server.
        let error = await #expect(throws: PostgresError.self) { try await postgres.query("SELECT pg_sleep(5)") }
        #expect(error?.isQueryCanceled == true)
        #expect(try await postgres.query("SELECT 1").count == 1)
        await postgres.shutdown()
    }

    @Test func exhaustedPoolFailsWaitingCallersWithAClearTimeout() async throws {
        var configuration = try await TestServers.freshDatabase()
        configuration.poolSize = 1
        configuration.acquireTimeout = .milliseconds(200)
        let postgres = PostgresClient(configuration: configuration)
        // The one connection is held until the test lets go (not for a fixed time: on a loaded
        // machine the waiter's timer may fire late, never early).
        let (letGo, release) = AsyncStream<Void>.makeStream()
        let holder = Task { try await postgres.transaction { _ in for await _ in letGo {} } }
        #expect(try await eventually { postgres.poolUsage.leased > 0 })

        let error = await #expect(throws: ConnectionPoolError.self) { try await postgres.query("SELECT 1") }

        #expect(error?.isAcquireTimeout == true)
        #expect(error?.description.hasPrefix("postgres pool exhausted") == true)
        release.finish()
        _ = try await holder.value
        #expect(try await postgres.query("SELECT 1").count == 1)
        await postgres.shutdown()
    }

    @Test func cachedStatementsSurviveSchemaChangesAndTheCacheLimit() async throws {
        var configuration = try await TestServers.freshDatabase()
        configuration.poolSize = 1
        let postgres = PostgresClient(configuration: configuration)
        try await postgres.query("CREATE TABLE wallets (id INT PRIMARY KEY, owner TEXT NOT NULL)")
        try await postgres.query("INSERT INTO wallets VALUES (\(1), \("Achieng"))")
        let select: PostgresQuery = "SELECT * FROM wallets WHERE id = \(1)"
        #expect(try await postgres.query(select).columns == ["id", "owner"])

        // A migration adds a column under the cached statement's plan.
        try await postgres.query("ALTER TABLE wallets ADD COLUMN language TEXT NOT NULL DEFAULT 'sw'")
        let row = try #require(try await postgres.query(select).single())
        #expect(try row.decode(String.self, column: "language") == "sw")

        // More distinct statements than the cache holds: it starts over and keeps working.
        for index in 0..<300 {
            let value = try await postgres.query("SELECT \(unescaped: String(index)) + \(1)").single()?.decode(Int.self, column: 0)
            #expect(value == index + 1)
        }
        #expect(try await postgres.query(select).count == 1)
        await postgres.shutdown()
    }

    @Test func callsSucceedAgainAfterTheServerRestarts() async throws {
        try await PrivateServer.with(.postgres) { server in
            var configuration = server.postgresConfiguration
            configuration.poolSize = 3
            let postgres = PostgresClient(configuration: configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 { group.addTask { try await postgres.query("SELECT 1") } }
                try await group.waitForAll()
            }

            try await server.stop()
            let down = await #expect(throws: PostgresError.self) { try await postgres.query("SELECT 1") }
            #expect(down?.code == .connection)
            try await server.start()

            for _ in 0..<6 {
                #expect(try await postgres.query("SELECT 1").single()?.decode(Int.self, column: 0) == 1)
            }
            try await postgres.transaction { tx in try await tx.query("SELECT 1") }
            await postgres.shutdown()
        }
    }

    /// Synchronous replication (Patroni's strict mode, CloudNativePG's `dataDurability: required`)
    /// makes COMMIT wait for a standby. When that wait is cancelled (an operator's
    /// `pg_cancel_backend` on the stuck commits, a client's cancel request), the server stops
    /// waiting and answers the COMMIT with success and only a warning: the transaction is on the
    /// primary alone, and a failover now would lose it. The client reports that as an unknown
    /// outcome, never as done.
    @Test func aCommitNoSynchronousStandbyConfirmedIsNeverReportedDone() async throws {
        try await PrivateServer.with(.postgres) { server in
            let admin = PostgresClient(configuration: server.postgresConfiguration)
            try await admin.query("CREATE TABLE moves (key TEXT PRIMARY KEY)")
            // A synchronous standby that never connects: every commit that wrote waits for it.
            try await admin.query("ALTER SYSTEM SET synchronous_standby_names = 'standby_that_never_comes'")
            try await admin.query("ALTER DATABASE ussd SET synchronous_commit = on")
            // A database that silences warnings: the client still hears this one.
            try await admin.query("ALTER DATABASE ussd SET client_min_messages = error")
            await admin.shutdown()
            try await server.stop()
            try await server.start()

            let postgres = PostgresClient(configuration: server.postgresConfiguration)
            let staff = PostgresClient(configuration: server.postgresConfiguration)
            // Waits for a commit stuck on the standby, then cancels its wait as an operator would.
            func cancelTheWaitingCommit() async throws {
                let cancelled = try await eventually {
                    try await staff.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").count > 0
                }
                #expect(cancelled, "a commit waited for the synchronous standby")
            }
            async let cancelled: Void = cancelTheWaitingCommit()
            let alone = await #expect(throws: PostgresError.self) { try await postgres.query("INSERT INTO moves VALUES (\("alone"))") }
            try await cancelled
            #expect(alone?.code == .unconfirmedCommit)

            async let cancelledAgain: Void = cancelTheWaitingCommit()
            let inTransaction = await #expect(throws: PostgresError.self) {
                try await postgres.transaction { tx in try await tx.query("INSERT INTO moves VALUES (\("in a transaction"))") }
            }
            try await cancelledAgain
            #expect(inTransaction?.code == .unconfirmedCommit)
            #expect(String(describing: inTransaction).contains("not confirmed by a synchronous standby"))

            // Why neither is a failure: the primary has both. Reads commit without waiting, and
            // the connections stay usable.
            #expect(try await postgres.query("SELECT count(*) FROM moves").single()?.decode(Int.self, column: 0) == 2)
            // Without a standby to wait for, commits are done again.
            try await staff.query("ALTER SYSTEM RESET synchronous_standby_names")
            await postgres.shutdown()
            await staff.shutdown()
            try await server.stop()
            try await server.start()
            let again = PostgresClient(configuration: server.postgresConfiguration)
            try await again.query("INSERT INTO moves VALUES (\("confirmed"))")
            #expect(try await again.query("SELECT count(*) FROM moves").single()?.decode(Int.self, column: 0) == 3)
            await again.shutdown()
        }
    }

    /// A multi-host `DATABASE_URL` with `target_session_attrs=read-write`, as a Patroni cluster is
    /// reached: the pool connects to whichever server takes writes, skipping a standby, and after a
    /// failover (the old primary gone, the standby promoted) its next connections find the new one.
    @Test func aMultiHostURLFindsTheServerThatTakesWritesAfterAFailover() async throws {
        try await PrivateServer.with(.postgres) { first in
            try await PrivateServer.with(.postgres) { second in
                // The second plays a standby: it refuses writes, as one in recovery does.
                try await Self.setReadOnly(second, true)
                var configuration = PostgresConfiguration(
                    connectionString: "postgres://ussd@127.0.0.1:\(second.port),127.0.0.1:\(first.port)/ussd?target_session_attrs=read-write"
                )
                configuration.poolSize = 3
                let postgres = PostgresClient(configuration: configuration)
                let port: PostgresQuery = "SELECT inet_server_port()"
                try await withThrowingTaskGroup(of: Int?.self) { group in
                    for _ in 0..<6 { group.addTask { try await postgres.query(port).single()?.decode(Int.self, column: 0) } }
                    for try await answered in group { #expect(answered == first.port, "the standby, listed first, is skipped") }
                }

                // Failover: the primary is lost, the standby promoted.
                try await first.stop()
                try await Self.setReadOnly(second, false)
                var answered: Int?
                for _ in 0..<4 where answered == nil {
                    // The first call on a connection broken under it may fail; the pool replaces it.
                    answered = try? await postgres.query(port).single()?.decode(Int.self, column: 0)
                }
                #expect(answered == second.port)
                try await postgres.query("CREATE TABLE after_failover (id INT)")
                await postgres.shutdown()
            }
        }
    }

    /// Restarts the server with `default_transaction_read_only` on (a standby's answer to
    /// `target_session_attrs`) or off.
    private static func setReadOnly(_ server: PrivateServer, _ readOnly: Bool) async throws {
        let admin = PostgresClient(configuration: server.postgresConfiguration)
        try await admin.query("ALTER SYSTEM SET default_transaction_read_only = \(unescaped: readOnly ? "on" : "off")")
        await admin.shutdown()
        try await server.stop()
        try await server.start()
    }
}

/// Lets `parties` tasks wait until all of them have arrived.
actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(parties: Int) { self.parties = parties }

    func arrive() async {
        self.arrived += 1
        if self.arrived >= self.parties {
            self.waiting.forEach { $0.resume() }
            self.waiting = []
            return
        }
        await withCheckedContinuation { self.waiting.append($0) }
    }
}

/// Counts calls across retries of one closure.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { self.lock.withLock { self.value += 1; return self.value } }
}
