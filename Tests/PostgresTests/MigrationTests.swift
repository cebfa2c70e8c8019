import Foundation
import Postgres
import Testing
import TestSupport

@Suite struct MigrationTests {
    let migrations = [
        Migration(version: 1, name: "customers", sql: "CREATE TABLE customers (id BIGSERIAL PRIMARY KEY, msisdn TEXT NOT NULL UNIQUE);"),
        Migration(version: 2, name: "names", sql: "ALTER TABLE customers ADD COLUMN name TEXT; CREATE INDEX customers_name ON customers (name);"),
    ]

    @Test func aSlowMigrationIsNotCutShortByTheStatementTimeout() async throws {
        var configuration = try await TestServers.freshDatabase()
        configuration.statementTimeout = .milliseconds(100)
        configuration.poolSize = 1
        let postgres = PostgresClient(configuration: configuration)
        // pg_sleep: a backfill slower than the statement timeout, played by the server.
        let slow = Migration(version: 1, name: "backfill", sql: "SELECT pg_sleep(0.3); CREATE TABLE filled (id INT);")
        #expect(try await postgres.migrate([slow]) == [1])
        // The same connection has its own timeout back afterwards.
        #expect(try await postgres.query("SHOW statement_timeout").single()?.decode(String.self, column: 0) == "100ms")
        await #expect(throws: PostgresError.self) { try await postgres.query("SELECT pg_sleep(0.3)") }
        await postgres.shutdown()
    }

    @Test func appliesPendingMigrationsInOrderOnceOnly() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        #expect(try await postgres.migrate(Array(self.migrations.reversed())) == [1, 2])
        #expect(try await postgres.migrate(self.migrations) == [], "a second run applies nothing")
        try await postgres.query("INSERT INTO customers (msisdn, name) VALUES (\("254712345678"), \("Wanjiku"))")
        let recorded = try await postgres.query("SELECT version, name FROM schema_migrations ORDER BY version").map { try $0.decode((Int, String).self) }
        #expect(recorded.map(\.0) == [1, 2])
        #expect(recorded.map(\.1) == ["customers", "names"])

        let third = Migration(version: 3, name: "language", sql: "ALTER TABLE customers ADD COLUMN language TEXT NOT NULL DEFAULT 'en';")
        #expect(try await postgres.migrate(self.migrations + [third]) == [3])
        await postgres.shutdown()
    }

    @Test func failingMigrationRollsBackAndIsNotRecorded() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        let broken = Migration(version: 3, name: "broken", sql: "CREATE TABLE half (id INT); SELECT no_such_column FROM customers;")
        await #expect(throws: PostgresError.self) { try await postgres.migrate(self.migrations + [broken]) }
        let tables = try await postgres.query("SELECT count(*) FROM pg_tables WHERE tablename = 'half'").single()?.decode(Int.self, column: 0)
        #expect(tables == 0, "the failed migration's first statement was rolled back")
        let versions = try await postgres.query("SELECT version FROM schema_migrations ORDER BY version").map { try $0.decode(Int.self, column: 0) }
        #expect(versions == [1, 2], "the migrations before the broken one stay applied")
        await postgres.shutdown()
    }

    @Test func editedAppliedMigrationIsRefused() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase())
        try await postgres.migrate(self.migrations)
        let edited = [self.migrations[0], Migration(version: 2, name: "names", sql: "ALTER TABLE customers ADD COLUMN nickname TEXT;")]
        await #expect(throws: MigrationError.checksumMismatch(version: 2, name: "names")) { try await postgres.migrate(edited) }
        await postgres.shutdown()
    }

    @Test func replicasMigratingTogetherApplyEachVersionOnce() async throws {
        let configuration = try await TestServers.freshDatabase()
        let replicas = (0..<4).map { _ in PostgresClient(configuration: configuration) }
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for replica in replicas { group.addTask { try await replica.migrate(self.migrations) } }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(applied.sorted() == [1, 2])
        for replica in replicas { await replica.shutdown() }
    }

    @Test func loadsNumberedSQLFilesFromADirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "CREATE TABLE b ();".write(to: directory.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE a ();".write(to: directory.appendingPathComponent("0002_first_one.sql"), atomically: true, encoding: .utf8)
        try "notes".write(to: directory.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)

        let loaded = try Migration.load(directory: directory)
        #expect(loaded.map(\.version) == [2, 10])
        #expect(loaded.map(\.name) == ["first_one", "second"])

        try "".write(to: directory.appendingPathComponent("nonumber.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.badFileName("nonumber.sql")) { try Migration.load(directory: directory) }
    }
}

@Suite struct ConfigurationDescriptionTests {
    @Test func descriptionsNeverShowPasswords() throws {
        #expect("\(PostgresConfiguration(connectionString: "postgres://ussd:s3cret@db:5432/ussd"))" == "postgres://ussd:***@db:5432/ussd")
        #expect("\(PostgresConfiguration(connectionString: "host=db password=s3cret dbname=ussd"))" == "host=db password=*** dbname=ussd")
        #expect("\(PostgresConfiguration(connectionString: "postgres://ussd@db/ussd"))" == "postgres://ussd@db/ussd")
    }
}
