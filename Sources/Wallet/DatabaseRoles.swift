import Crypto
import CryptoExtras
import Foundation
import Postgres

/// The database's group roles (migration 0014) and the logins people and processes use. Only the
/// schema's owner (or a role with CREATEROLE) creates logins; `ussd-gateway db login` runs this.
public enum DatabaseRoles {
    /// The group roles a login may join.
    public static let groups = ["ussd_app", "ussd_report", "ussd_operator", "ussd_approver", "ussd_desk"]

    /// What creating a login did.
    public enum Outcome: Sendable, Hashable {
        case created
        /// The login existed: it is now (also) in the group, with the password given, if any.
        case updated
    }

    /// Creates the login `name` in `group` (or adds an existing login to it), with `password`
    /// when one is given (nil: none, for servers that trust the connection). The password never
    /// reaches the server: its SCRAM-SHA-256 verifier is computed here, as `psql`'s `\password`
    /// does, so no statement or server log line can hold it. A login already in another group (or
    /// a group role, or the owner) is refused: one login, one role.
    ///
    /// `canLogIn` false makes a role that never connects itself (a member of staff who works only
    /// through the staff desk, which switches to it). A login in `ussd_desk` is the desk's own: it
    /// inherits nothing and may switch to every member of staff (migration 0023's `desk_admit_all`).
    public static func createLogin(_ postgres: PostgresClient, name: String, group: String, password: String?, canLogIn: Bool = true) async throws -> Outcome {
        guard name.range(of: #"^[a-z_][a-z0-9_]{0,62}$"#, options: .regularExpression) != nil else {
            throw WalletError.invalidArgument("a login name is lower-case letters, digits and _, at most 63 characters")
        }
        guard Self.groups.contains(group) else { throw WalletError.invalidArgument("the role is one of \(Self.groups.joined(separator: ", "))") }
        guard !Self.groups.contains(name) else { throw WalletError.invalidArgument("\(name) is a group role, not a login") }
        let verifier = try password.map(Self.scramVerifier)
        return try await postgres.transaction { connection in
            if let row = try await connection.query(
                """
                SELECT r.rolsuper OR r.rolcreaterole OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid),
                       coalesce((SELECT string_agg(g.rolname::text, ',') FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '')
                FROM pg_roles r WHERE r.rolname = \(name)
                """
            ).single() {
                let (powerful, joined) = try row.decode((Bool, String).self)
                let groups = joined.split(separator: ",").map(String.init)
                guard !powerful else { throw WalletError.invalidArgument("\(name) is a superuser, may create roles or owns a schema: not a login for \(group)") }
                if let other = groups.first(where: { $0 != group }) {
                    throw WalletError.invalidArgument("\(name) is already in \(other): give each role its own login")
                }
            }
            try await connection.query(
                """
                SELECT set_config('ussd.new_login', \(name), true), set_config('ussd.new_group', \(group), true), set_config('ussd.new_password', \(verifier ?? ""), true),
                       set_config('ussd.new_can_log_in', \(canLogIn ? "LOGIN" : "NOLOGIN"), true)
                """
            )
            let created = try await connection.query(
                """
                SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('ussd.new_login'))
                """
            ).single()!.decode(Bool.self, column: 0)
            try await connection.executeScript(
                """
                DO $$
                DECLARE
                    login TEXT := current_setting('ussd.new_login');
                    secret TEXT := nullif(current_setting('ussd.new_password'), '');
                BEGIN
                    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
                        EXECUTE format('CREATE ROLE %I ' || current_setting('ussd.new_can_log_in'), login);
                    END IF;
                    IF secret IS NOT NULL THEN
                        EXECUTE format('ALTER ROLE %I PASSWORD %L', login, secret);
                    END IF;
                    EXECUTE format('GRANT %I TO %I', current_setting('ussd.new_group'), login);
                END $$;
                """
            )
            if group == "ussd_desk" { try await connection.query("SELECT desk_admit_all(\(name))") }
            return created ? .created : .updated
        }
    }

    /// A SCRAM-SHA-256 verifier of `password` (RFC 5802, 7677), in the form Postgres stores and
    /// accepts in place of a password: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    /// 4096 iterations, Postgres' own.
    static func scramVerifier(_ password: String) throws -> String {
        let iterations = 4096
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let salted = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: iterations)
        let clientKey = Data(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: salted))
        let storedKey = Data(SHA256.hash(data: clientKey))
        let serverKey = Data(HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: salted))
        return "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$\(storedKey.base64EncodedString()):\(serverKey.base64EncodedString())"
    }
}
