import GatewayHTTP
import Postgres
import Wallet

/// The gateway's schema changes, in version order, applied by `ussd-gateway migrate`.
public enum GatewayMigrations {
    public static func all() throws -> [Migration] { try WalletMigrations.all() }
}
