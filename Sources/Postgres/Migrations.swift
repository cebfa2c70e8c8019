import Foundation
import Logging

/// One versioned schema change: `0003_add_outbox.sql` is version 3, name `add_outbox`.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A short fingerprint of the SQL, recorded so an edited, already-applied file is noticed.
    var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in self.sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// Reads every `NNNN_name.sql` in `directory`, sorted by version; other files are ignored.
    public static func load(directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var migrations: [Migration] = []
        for file in files where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw MigrationError.badFileName(file)
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        let versions = Dictionary(grouping: migrations, by: \.version)
        if let duplicate = versions.first(where: { $0.value.count > 1 }) {
            throw MigrationError.duplicateVersion(duplicate.key)
        }
        return migrations.sorted { $0.version < $1.version }
    }
}

/// Why migrating stopped.
public enum MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    case badFileName(String)
    case duplicateVersion(Int)
    /// An applied migration's SQL differs from the file now: someone edited history.
    case checksumMismatch(version: Int, name: String)

    public var description: String {
        switch self {
        case .badFileName(let file): return "migration file \(file) is not named NNNN_name.sql"
        case .duplicateVersion(let version): return "two migration files have version \(version)"
        case .checksumMismatch(let version, let name):
            return "migration \(version) (\(name)) was changed after it was applied; add a new migration instead"
        }
    }
}

extension PostgresClient {
    /// Applies the migrations not yet recorded in `schema_migrations`, in version order, each in
    /// its own transaction. Holds an advisory lock meanwhile, so replicas starting together
    /// migrate once. Returns the versions it applied; running it again applies nothing.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [Int] {
        try await self.withConnection { connection in
            let lockKey: Int64 = 0x7573_7364_6d69_6772  // "ussdmigr"
            // A migration may rightly take longer than the service's statement timeout (a backfill,
            // an index build, waiting for another replica's migration): none on this session
            // meanwhile; RESET gives back the connection's own setting.
            try await connection.executeScript("SET statement_timeout = 0")
            // Lock first: concurrent CREATE TABLE IF NOT EXISTS can still collide on the catalog.
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))")
            do {
                try await connection.executeScript(
                    """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version BIGINT PRIMARY KEY,
                        name TEXT NOT NULL,
                        checksum TEXT NOT NULL,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                    )
                    """
                )
                let applied = try await self.appliedMigrations(connection)
                var done: [Int] = []
                for migration in migrations.sorted(by: { $0.version < $1.version }) {
                    if let checksum = applied[migration.version] {
                        guard checksum == migration.checksum else {
                            throw MigrationError.checksumMismatch(version: migration.version, name: migration.name)
                        }
                        continue
                    }
                    try await connection.transaction { transaction in
                        try await transaction.executeScript(migration.sql)
                        try await transaction.query(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))"
                        )
                    }
                    self.logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    done.append(migration.version)
                }
                try await connection.query("SELECT pg_advisory_unlock(\(lockKey))")
                try await connection.executeScript("RESET statement_timeout")
                return done
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))")
                try? await connection.executeScript("RESET statement_timeout")
                throw error
            }
        }
    }

    private func appliedMigrations(_ connection: PostgresConnection) async throws -> [Int: String] {
        var applied: [Int: String] = [:]
        for row in try await connection.query("SELECT version, checksum FROM schema_migrations") {
            let (version, checksum) = try row.decode((Int, String).self)
            applied[version] = checksum
        }
        return applied
    }
}
