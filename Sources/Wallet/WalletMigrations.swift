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

    /// The key store's schema (`KeyStoreMigrations/`): the data keys that seal personal data, in a
    /// database of their own (``PersonalData``).
    public static func keyStore() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "KeyStoreMigrations", withExtension: nil) else {
            throw MigrationError.badFileName("KeyStoreMigrations resource folder is missing from the Wallet bundle")
        }
        return try Migration.load(directory: directory)
    }
}
