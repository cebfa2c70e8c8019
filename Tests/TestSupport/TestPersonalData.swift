import Foundation
import Postgres
import Wallet

/// The personal-data keys the tests use: one KEK (version 1) every test process and every
/// gateway child process shares (`PERSONAL_DATA_KEY`), and key stores on the test server.
public enum TestPersonalData {
    public static let key = Array("test-personal-data-kek-32-bytes!".utf8)
    /// `PERSONAL_DATA_KEY`'s value for child processes.
    public static let environmentValue = "1:" + key.map { String(format: "%02x", $0) }.joined()

    /// A key store URL for a production configuration that is loaded but never serves.
    public static let productionStore = "postgres://ussd@127.0.0.1:1/ussd_keys"

    /// A new, migrated key store database.
    public static func freshStore() async throws -> PostgresConfiguration {
        let store = try await TestServers.freshDatabase("keys")
        let client = PostgresClient(configuration: store)
        try await client.migrate(try WalletMigrations.keyStore())
        await client.shutdown()
        return store
    }

    /// One key store for every test of this process that needs no store of its own (subjects are
    /// random, so tests never meet in it).
    static let shared = Task { try await freshStore() }

    /// Personal data under the tests' KEK, on the shared key store or on `store`.
    public static func make(store: PostgresConfiguration? = nil, keys: (any PINKeyStore)? = nil) async throws -> PersonalData {
        var configuration: PostgresConfiguration
        if let store { configuration = store } else { configuration = try await Self.shared.value }
        configuration.poolSize = 2
        return PersonalData(keys: keys ?? SoftwarePINKeys(key: Self.key, noun: "personal-data key"), store: PostgresClient(configuration: configuration))
    }
}

extension TestServers {
    /// `pg_dump` of `database` as plain SQL (what a backup holds).
    public static func dump(_ database: PostgresConfiguration) async throws -> String {
        let bin = try await PrivateServer.script(["pg-bindir"]).trimmingCharacters(in: .whitespacesAndNewlines)
        return try await ChildProcess.run(bin + "/pg_dump", ["--no-owner", "--no-privileges", database.connectionString])
    }

    /// A new database holding `dump` (a backup restored), as the server's admin.
    public static func restore(_ dump: String) async throws -> PostgresConfiguration {
        let database = try await Self.freshDatabase("restored")
        let bin = try await PrivateServer.script(["pg-bindir"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dump-\(UUID().uuidString).sql").path
        try dump.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = try await ChildProcess.run(bin + "/psql", ["-q", "-v", "ON_ERROR_STOP=1", "-f", file, database.connectionString])
        return database
    }
}
