import Foundation
import Postgres

/// The only databases a benchmark writes to: one whose name ends in `_bench` (an operator marked
/// it as a benchmark database), never a wallet that might hold real customers' money.
enum BenchmarkDatabase {
    static let suffix = "_bench"

    /// `configuration` when its database is marked as a benchmark database; otherwise a refusal
    /// that names the database and says how to mark one.
    static func checked(_ configuration: PostgresConfiguration) throws -> PostgresConfiguration {
        guard let name = Self.name(of: configuration.connectionString), name.hasSuffix(Self.suffix) else {
            throw BenchmarkError.unmarkedDatabase(Self.name(of: configuration.connectionString) ?? "(unnamed)")
        }
        return configuration
    }

    /// The database a libpq URL (`postgres://user@host:port,host:port/name?...`) or key=value
    /// string (`dbname=name ...`) names, as libpq reads it.
    static func name(of connectionString: String) -> String? {
        PostgresConfiguration(connectionString: connectionString).declaredOptions["dbname"]
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case serverDidNotStart
    case unexpected(String)
    case unmarkedDatabase(String)

    var description: String {
        switch self {
        case .serverDidNotStart: return "the gateway did not start"
        case .unexpected(let text): return "unexpected answer: \(text.prefix(200))"
        case .unmarkedDatabase(let name):
            return "refusing to write to database \(name): benchmarks write only to a database whose name ends in \(BenchmarkDatabase.suffix) (createdb wallet_bench)"
        }
    }
}
