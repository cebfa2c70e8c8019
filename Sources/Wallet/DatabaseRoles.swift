import Foundation
import Postgres

/// The database's group roles (migration 0014) and the logins people and processes use. Only the
/// schema's owner (or a role with CREATEROLE) creates logins; `ussd-gateway db login` runs this.
public enum DatabaseRoles {
    /// The group roles a login may join.
    public static let groups = ["ussd_app", "ussd_report", "ussd_operator", "ussd_approver"]

    /// What creating a login did.
    public enum Outcome: Sendable, Hashable {
        case created
        /// The login existed: it is now (also) in the group, with the password given, if any.
        case updated
    }

    /// Creates the login `name` in `group` (or adds an existing login to it), with `password`
    /// when one is given (nil: none, for servers that trust the connection). The password is
    /// passed as a parameter and never appears in a statement's text.
    public static func createLogin(_ postgres: PostgresClient, name: String, group: String, password: String?) async throws -> Outcome {
        guard name.range(of: #"^[a-z_][a-z0-9_]{0,62}$"#, options: .regularExpression) != nil else {
            throw WalletError.invalidArgument("a login name is lower-case letters, digits and _, at most 63 characters")
        }
        guard Self.groups.contains(group) else { throw WalletError.invalidArgument("the role is one of \(Self.groups.joined(separator: ", "))") }
        guard !Self.groups.contains(name) else { throw WalletError.invalidArgument("\(name) is a group role, not a login") }
        // Transaction-local settings: the password is gone at commit or rollback.
        return try await postgres.transaction { connection in
            try await connection.query(
                "SELECT set_config('ussd.new_login', \(name), true), set_config('ussd.new_group', \(group), true), set_config('ussd.new_password', \(password ?? ""), true)"
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
                        EXECUTE format('CREATE ROLE %I LOGIN', login);
                    END IF;
                    IF secret IS NOT NULL THEN
                        EXECUTE format('ALTER ROLE %I PASSWORD %L', login, secret);
                    END IF;
                    EXECUTE format('GRANT %I TO %I', current_setting('ussd.new_group'), login);
                END $$;
                """
            )
            return created ? .created : .updated
        }
    }
}
