import Logging
import Postgres

/// The staff desk would log in as something other than a desk login: a superuser, the owner, a
/// login that may create roles, one outside `ussd_desk`, or one that inherits its members' rights.
public struct UnsafeDeskLogin: Error, CustomStringConvertible {
    public let user: String
    public let why: String
    public var description: String {
        "DESK_DATABASE_URL logs in as \(user), \(why): give the desk a login of its own (ussd-gateway db login NAME --role ussd_desk; see SECURITY.md)"
    }
}

/// Checks the desk's login at start-up, as ``checkDatabaseLogin`` does the gateway's: production
/// refuses an unsafe one (``UnsafeDeskLogin``), development warns; and warns, in production, when
/// it crosses the network without TLS (staff passwords' hashes and TOTP secrets travel on it). A
/// database that does not answer yet is only logged.
public func checkDeskLogin(config: GatewayConfig, logger: Logger) async throws {
    guard config.desk.enabled, let configuration = config.desk.postgres else { return }
    let postgres = PostgresClient(configuration: configuration, logger: logger)
    do {
        try await checkDeskLogin(postgres, config: config, logger: logger)
        await postgres.shutdown()
    } catch {
        await postgres.shutdown()
        throw error
    }
}

func checkDeskLogin(_ postgres: PostgresClient, config: GatewayConfig, logger: Logger) async throws {
    let row: PostgresRow
    do {
        guard
            let found = try await postgres.query(
                """
                SELECT current_user::text, r.rolsuper, r.rolcreaterole, r.rolinherit,
                       coalesce(pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'transfers'), 'USAGE'), false),
                       EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid AND g.rolname = 'ussd_desk')
                FROM pg_roles r WHERE r.rolname = current_user
                """
            ).single()
        else { return }
        row = found
    } catch {
        logger.warning("the staff desk's database login could not be checked yet", metadata: ["error": "\(error)"])
        return
    }
    let (user, superuser, createRole, inherits, owner, desk) = try row.decode((String, Bool, Bool, Bool, Bool, Bool).self)
    let why =
        superuser
        ? "a superuser" : owner ? "the schema's owner" : createRole ? "a login that can create roles" : !desk ? "a login outside ussd_desk"
        : inherits ? "a login that inherits the rights of the staff it switches to (it must be NOINHERIT)" : nil
    if let why {
        if config.environment == .production { throw UnsafeDeskLogin(user: user, why: why) }
        logger.warning("the staff desk logs in as \(why): production refuses it", metadata: ["db_user": .string(user)])
    }
    if let transport = try? await postgres.transport(), let warning = TransportSecurity.warnings(environment: config.environment, redis: config.redis, postgres: transport).first(where: { !$0.message.hasPrefix("Redis") }) {
        logger.warning("the staff desk: \(warning.message)", metadata: ["host": .string(warning.host)])
    }
}
