import CLibPQ
import Foundation

/// How a Postgres connection travels: the host it reaches, libpq's `sslmode`, and whether TLS is
/// in use. Read from a live connection (``PostgresClient/transport()``) or, before one could be
/// made, from the connection string (``PostgresConfiguration/declaredTransport``).
public struct PostgresTransport: Sendable, Hashable {
    /// The hosts: names, addresses, or a Unix-socket directory (a path, or empty for libpq's default).
    public var hosts: [String]
    /// libpq's `sslmode`: `disable`, `allow`, `prefer` (libpq's default), `require`, `verify-ca`
    /// or `verify-full`.
    public var sslMode: String
    /// Whether the connection speaks TLS (libpq's `PQsslInUse`); nil when read from the
    /// configuration alone.
    public var encrypted: Bool?

    public init(hosts: [String], sslMode: String, encrypted: Bool?) {
        self.hosts = hosts
        self.sslMode = sslMode
        self.encrypted = encrypted
    }
}

extension PostgresConfiguration {
    /// The hosts and `sslmode` the connection string names, as libpq would read them
    /// (`PQconninfoParse`, then `PGHOST` / `PGSSLMODE`, then libpq's defaults).
    public var declaredTransport: PostgresTransport {
        let environment = ProcessInfo.processInfo.environment
        let options = self.declaredOptions
        let hosts = options["host"] ?? options["hostaddr"] ?? environment["PGHOST"] ?? ""
        return PostgresTransport(
            hosts: hosts.split(separator: ",", omittingEmptySubsequences: false).map(String.init),
            sslMode: options["sslmode"] ?? environment["PGSSLMODE"] ?? "prefer", encrypted: nil
        )
    }
}

extension PostgresConfiguration {
    /// The settings the connection string names, as libpq reads them (`PQconninfoParse`: URLs with
    /// several hosts, `key=value` strings, percent-encoding); empty when libpq cannot parse it.
    public var declaredOptions: [String: String] {
        var options: [String: String] = [:]
        var problem: UnsafeMutablePointer<CChar>?
        if let parsed = PQconninfoParse(self.connectionString, &problem) {
            options = LibPQOptions.values(parsed)
            PQconninfoFree(parsed)
        }
        if let problem { PQfreemem(problem) }
        return options
    }
}

/// libpq's option arrays (`PQconninfoParse`, `PQconninfo`) as a dictionary of the values set.
enum LibPQOptions {
    static func values(_ options: UnsafeMutablePointer<PQconninfoOption>) -> [String: String] {
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        return values
    }
}
