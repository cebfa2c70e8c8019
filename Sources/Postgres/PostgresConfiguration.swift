import Basics
import Foundation
import Settings

/// How to reach Postgres: any libpq connection string or `postgres://` URL, plus pool settings.
public struct PostgresConfiguration: Sendable, Hashable {
    /// Handed to libpq as it is, e.g. `postgres://user:pass@127.0.0.1:5432/db`; never logged.
    public var connectionString: String
    /// The most connections (and pool threads) at once.
    public var poolSize: Int = 8
    /// How long a caller waits for a free connection.
    public var acquireTimeout: Duration = .seconds(5)
    /// libpq's `connect_timeout` (whole seconds, at least 1... libpq's own rounding).
    public var connectTimeout: Duration = .seconds(3)
    /// The server cancels any statement running longer (`statement_timeout`); `nil` for none.
    public var statementTimeout: Duration? = .seconds(5)
    /// Shown in `pg_stat_activity`.
    public var applicationName = "ussd-gateway"

    public init(connectionString: String) {
        self.connectionString = connectionString
    }

    /// libpq keywords: the connection string is expanded first, these settings override it.
    var keywords: [(String, String)] {
        // client_min_messages: the warning that a commit's wait for a synchronous standby was
        // cancelled must reach the client (a role's or database's setting could silence it).
        var options = "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c client_min_messages=warning"
        if let statementTimeout {
            options += " -c statement_timeout=\(max(1, statementTimeout.inMilliseconds))"
        }
        return [
            ("dbname", self.connectionString),
            ("connect_timeout", String(max(1, Int(self.connectTimeout.components.seconds)))),
            ("application_name", self.applicationName),
            ("client_encoding", "UTF8"),
            ("options", options),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("tcp_user_timeout", "30000"),
        ]
    }
}


extension PostgresConfiguration: CustomStringConvertible {
    /// The connection string with any password replaced by `***`, safe for logs.
    public var description: String {
        var text = self.connectionString
        // URL form: scheme://user:password@host
        if let schemeEnd = text.range(of: "://"), let at = text[schemeEnd.upperBound...].firstIndex(of: "@"),
            let colon = text[schemeEnd.upperBound..<at].firstIndex(of: ":")
        {
            text.replaceSubrange(text.index(after: colon)..<at, with: "***")
        }
        // keyword form: password=secret
        if let range = text.range(of: #"password\s*=\s*('[^']*'|\S+)"#, options: .regularExpression) {
            text.replaceSubrange(range, with: "password=***")
        }
        return text
    }
}

extension PostgresConfiguration {
    /// The local database the development gateway uses when `DATABASE_URL` is unset.
    public static let localURL = "postgres://ussd@127.0.0.1:5432/ussd"

    /// `DATABASE_URL` (a `postgres://` URL or a libpq connection string), the pool and the statement
    /// timeout, from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        let url = reader.value("DATABASE_URL", secret: true) ?? Self.localURL
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") || url.contains("=") else {
            throw ConfigError(variable: "DATABASE_URL", problem: "must be a postgres:// URL or a libpq connection string")
        }
        self.init(connectionString: url)
        self.poolSize = try reader.integer("DATABASE_POOL_SIZE", default: self.poolSize, in: 1...512)
        let statementTimeout = try reader.integer(
            "DATABASE_STATEMENT_TIMEOUT_MS", default: Int(self.statementTimeout?.inMilliseconds ?? 0), in: 0...3_600_000
        )
        self.statementTimeout = statementTimeout == 0 ? nil : .milliseconds(statementTimeout)
    }
}
