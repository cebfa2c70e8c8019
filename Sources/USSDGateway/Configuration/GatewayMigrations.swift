import Postgres

/// The gateway's schema changes, in version order, applied by `ussd-gateway migrate`.
///
/// Each module that owns tables contributes its migrations here; the list is empty until the
/// wallet's ledger schema lands, and `migrate` then still creates `schema_migrations`.
public enum GatewayMigrations {
    public static var all: [Migration] { [] }
}
