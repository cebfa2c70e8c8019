import Foundation

/// Where and how to reach Redis: parsed once from `redis://[:password@]host:port/db`.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// The `AUTH` password; never printed by `description`.
    public var password: String?
    /// The `AUTH` user name for Redis 6 ACLs, when the URL names one.
    public var username: String?
    public var database: Int
    /// Connections, each with an I/O thread that pipelines the commands queued on it. One by
    /// default, as StackExchange.Redis does: Redis runs commands one at a time anyway, and one
    /// connection batches the most per round trip with the fewest thread wake-ups (on two cores the
    /// USSD benchmark made 2,967 menu hops/s with one, 2,740 with two, 2,429 with four).
    public var poolSize: Int = 1
    /// Most commands queued or awaiting replies at once; callers past it wait for a place.
    public var maximumInFlight: Int = 1024
    /// How long a caller waits for a place when `maximumInFlight` commands are outstanding.
    public var acquireTimeout: Duration = .seconds(5)
    /// TCP connect timeout.
    public var connectTimeout: Duration = .seconds(2)
    /// Socket read/write timeout of one command.
    public var commandTimeout: Duration = .seconds(2)

    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, username: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.username = username
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    public init(url: String) throws(RedisConfigurationError) {
        guard let components = URLComponents(string: url), components.scheme == "redis" else {
            throw RedisConfigurationError(reason: "must look like redis://[:password@]host:port/db")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisConfigurationError(reason: "has no host")
        }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw RedisConfigurationError(reason: "has a port outside 1...65535") }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw RedisConfigurationError(reason: "has a database number that is not a non-negative integer")
            }
            database = number
        }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 }
        let password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        self.init(host: host, port: port, password: password, username: user, database: database)
    }
}

/// A `REDIS_URL` that cannot be used; the reason never repeats the URL, which may hold a password.
public struct RedisConfigurationError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { self.reason }
}

extension RedisConfiguration: CustomStringConvertible {
    /// `redis://host:port/db`, with the password shown as `***`, safe for logs.
    public var description: String {
        let credentials = self.password == nil ? "" : "\(self.username ?? ""):***@"
        return "redis://\(credentials)\(self.host):\(self.port)/\(self.database)"
    }
}
