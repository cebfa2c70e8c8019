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
/// database that does not answer yet is only logged here: the desk itself stays closed until its
/// own check passes (``DeskService``).
public func checkDeskLogin(config: GatewayConfig, logger: Logger) async throws {
    guard config.desk.enabled, let configuration = config.desk.postgres else { return }
    let postgres = PostgresClient(configuration: configuration, logger: logger)
    do {
        try await checkDeskLogin(postgres, config: config, logger: logger)
        await postgres.shutdown()
    } catch let refused as UnsafeDeskLogin {
        await postgres.shutdown()
        throw refused
    } catch {
        await postgres.shutdown()
        logger.warning("the staff desk's database login could not be checked yet: the desk stays closed until it is", metadata: ["error": "\(error)"])
    }
}

func checkDeskLogin(_ postgres: PostgresClient, config: GatewayConfig, logger: Logger) async throws {
    // MEMBER, not USAGE: a NOINHERIT login uses no right of a role it belongs to until it switches,
    // but it may switch. Its staff roles are in the groups; the login itself must not be.
    guard
        let row = try await postgres.query(
            """
            SELECT current_user::text, r.rolsuper, r.rolcreaterole, r.rolinherit,
                   coalesce(pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'transfers'), 'MEMBER'), false),
                   EXISTS (SELECT 1 FROM pg_roles x WHERE x.oid <> r.oid AND (x.rolsuper OR x.rolcreaterole) AND pg_has_role(r.oid, x.oid, 'MEMBER')),
                   EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid AND g.rolname = 'ussd_desk'),
                   coalesce((SELECT string_agg(g.rolname::text, ',') FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                             WHERE m.member = r.oid AND g.rolname IN ('ussd_app', 'ussd_report', 'ussd_operator', 'ussd_approver')), '')
            FROM pg_roles r WHERE r.rolname = current_user
            """
        ).single()
    else { return }
    let (user, superuser, createRole, inherits, owner) = try row.decode((String, Bool, Bool, Bool, Bool).self)
    let (powerful, desk, groups) = (try row.decode(Bool.self, column: 5), try row.decode(Bool.self, column: 6), try row.decode(String.self, column: 7))
    let why: String? =
        if superuser { "a superuser" } else if owner { "the schema's owner, or may switch to it" } else if createRole || powerful {
            "a login that can create roles, or may switch to one that can"
        } else if !groups.isEmpty { "a login in \(groups) itself" } else if !desk { "a login outside ussd_desk" } else if inherits {
            "a login that inherits the rights of the staff it switches to (it must be NOINHERIT)"
        } else { nil }
    if let why {
        if config.environment == .production { throw UnsafeDeskLogin(user: user, why: why) }
        logger.warning("the staff desk logs in as \(why): production refuses it", metadata: ["db_user": .string(user)])
    }
    if let transport = try? await postgres.transport(),
        let warning = TransportSecurity.warnings(environment: config.environment, redis: config.redis, postgres: transport).first(where: { !$0.message.hasPrefix("Redis") })
    {
        logger.warning("the staff desk: \(warning.message)", metadata: ["host": .string(warning.host)])
    }
}
