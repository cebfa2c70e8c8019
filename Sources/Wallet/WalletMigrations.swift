import Foundation
import Postgres

/// The ledger's schema, from the SQL files in `Migrations/` (shipped as a resource bundle).
public enum WalletMigrations {
    public static func all() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw MigrationError.badFileName("Migrations resource folder is missing from the Wallet bundle")
        }
        return try Migration.load(directory: directory)
    }
}
