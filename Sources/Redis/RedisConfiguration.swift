import Basics
import Foundation
import Settings

/// Where and how to reach Redis: parsed once from `redis://[:password@]host:port/db`, or from
/// `redis+cluster://[:password@]host:port[,host:port...]` for a Redis Cluster; `rediss://` and
/// `rediss+cluster://` speak TLS.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// The cluster's seed nodes: empty for one Redis server at `host:port`. The client learns the
    /// rest of the cluster from any seed that answers.
    public var clusterSeeds: [RedisEndpoint] = []
    /// The `AUTH` password; never printed by `description`.
    public var password: String?
    /// The `AUTH` user name for Redis 6 ACLs, when the URL names one.
    public var username: String?
    public var database: Int
    /// TLS on every connection (`rediss://`, `rediss+cluster://`): the server's certificate must
    /// chain to a trusted CA and name the host (a DNS name, or an IP address in its IP SAN).
    public var tls = false
    /// A PEM file of the CA certificates to trust instead of the system's trust roots (a private
    /// CA's). Used only with ``tls``.
    public var tlsCAFile: String?
    /// A PEM certificate chain and its private key, for a server that asks clients for a
    /// certificate (mutual TLS); both or neither. Used only with ``tls``.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// Connections per NIO event loop (one by default), each pipelining the commands sent on it.
    /// A hop running on a loop sends on that loop's connection, so its reply needs no thread
    /// hand-off; one connection per loop also batches the most commands per write.
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

    /// True for a Redis Cluster (`redis+cluster://`).
    public var isCluster: Bool { !self.clusterSeeds.isEmpty }

    /// Parses `redis://[[user]:password@]host[:port][/db]` or
    /// `redis+cluster://[[user]:password@]host[:port][,host[:port]...]`, or the same with
    /// `rediss` (TLS).
    public init(url: String) throws(RedisConfigurationError) {
        for scheme in ["redis+cluster://", "rediss+cluster://"] where url.hasPrefix(scheme) {
            try self.init(clusterURL: url, scheme: scheme)
            return
        }
        guard let components = URLComponents(string: url), components.scheme == "redis" || components.scheme == "rediss" else {
            throw RedisConfigurationError(reason: "must look like redis://[:password@]host:port/db or redis+cluster://host:port,host:port")
        }
        guard var host = components.host, !host.isEmpty else {
            throw RedisConfigurationError(reason: "has no host")
        }
        // An IPv6 address in brackets (`redis://[::1]:6379`): connecting and certificate checks want it bare.
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
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
        self.tls = components.scheme == "rediss"
    }

    /// `redis+cluster://[[user]:password@]host:port,host:port...`: URLComponents reads one host
    /// only, so the seed list is split off first and each seed parsed on its own.
    private init(clusterURL url: String, scheme: String) throws(RedisConfigurationError) {
        var rest = Substring(url.dropFirst(scheme.count))
        var credentials: Substring?
        if let at = rest.lastIndex(of: "@") {
            credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        guard path.isEmpty || path == "0" else {
            throw RedisConfigurationError(reason: "names a database; a Redis Cluster has database 0 only")
        }
        var seeds: [RedisEndpoint] = []
        for part in rest.split(separator: ",", omittingEmptySubsequences: false) {
            guard let components = URLComponents(string: "redis://" + part), let host = components.host, !host.isEmpty,
                components.user == nil, components.path.isEmpty
            else {
                throw RedisConfigurationError(reason: "must look like redis+cluster://[:password@]host:port,host:port")
            }
            let port = components.port ?? 6379
            guard (1...65535).contains(port) else { throw RedisConfigurationError(reason: "has a port outside 1...65535") }
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            seeds.append(RedisEndpoint(host: bare, port: port))
        }
        guard seeds.count <= 64 else { throw RedisConfigurationError(reason: "names more than 64 seed nodes") }
        var user: String?
        var password: String?
        if let credentials {
            let pair = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = pair.first.flatMap { String($0).removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 }
            password = pair.count == 2 ? String(pair[1]).removingPercentEncoding : nil
        }
        self.init(host: seeds[0].host, port: seeds[0].port, password: password, username: user, database: 0)
        self.clusterSeeds = seeds
        self.tls = scheme == "rediss+cluster://"
    }

    /// The same settings for one node of a cluster: its address, the password and TLS settings of
    /// the whole cluster (a node named by `MOVED`, `ASK` or `CLUSTER SLOTS` is reached as a seed is).
    func node(_ endpoint: RedisEndpoint) -> RedisConfiguration {
        var node = self
        (node.host, node.port, node.database, node.clusterSeeds) = (endpoint.host, endpoint.port, 0, [])
        return node
    }
}

/// One Redis server's address.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` as Redis writes it in `MOVED` and `ASK` replies (IPv6 hosts have colons).
    init?(redirect text: Substring) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// A `REDIS_URL` that cannot be used; the reason never repeats the URL, which may hold a password.
public struct RedisConfigurationError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { self.reason }
}

extension RedisConfiguration: CustomStringConvertible {
    /// `redis://host:port/db` (or `redis+cluster://host:port,...`, `rediss` with TLS), with the
    /// password shown as `***`, safe for logs.
    public var description: String {
        let credentials = self.password == nil ? "" : "\(self.username ?? ""):***@"
        let scheme = self.tls ? "rediss" : "redis"
        if self.isCluster {
            return "\(scheme)+cluster://\(credentials)" + self.clusterSeeds.map(\.description).joined(separator: ",")
        }
        return "\(scheme)://\(credentials)\(RedisEndpoint(host: self.host, port: self.port))/\(self.database)"
    }
}

extension RedisConfiguration {
    /// `REDIS_URL` (`redis://` or `rediss://`, default the local server), the pool, the timeout and
    /// the TLS files, from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        if let url = reader.value("REDIS_URL", secret: true) {
            do {
                self = try RedisConfiguration(url: url)
            } catch {
                throw ConfigError(variable: "REDIS_URL", problem: error.reason)
            }
        } else {
            self.init()
        }
        self.poolSize = try reader.integer("REDIS_POOL_SIZE", default: self.poolSize, in: 1...64)
        self.maximumInFlight = try reader.integer("REDIS_MAX_IN_FLIGHT", default: self.maximumInFlight, in: 1...100_000)
        self.commandTimeout = try reader.milliseconds("REDIS_TIMEOUT_MS", default: self.commandTimeout, in: 10...60_000)
        (self.tlsCAFile, self.tlsCertificateFile, self.tlsKeyFile) =
            (reader.value("REDIS_CA_FILE"), reader.value("REDIS_TLS_CERT_FILE"), reader.value("REDIS_TLS_KEY_FILE"))
        guard (self.tlsCertificateFile == nil) == (self.tlsKeyFile == nil) else {
            throw ConfigError(variable: "REDIS_TLS_KEY_FILE", problem: "and REDIS_TLS_CERT_FILE must be set together")
        }
    }
}
