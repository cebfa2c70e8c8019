import Basics
import GatewayHTTP
import Logging
import Postgres
import Redis

/// Whether the gateway's connections to Redis and Postgres cross the network in the clear,
/// decided at start-up. Sessions in Redis hold the menu state of every caller and Postgres holds
/// the money, so production warns about either one to a host that is not this machine without
/// TLS, or (for Postgres) without checking the server's certificate against its name.
public enum TransportSecurity {
    /// One connection's problem: what to do about it, and the host concerned.
    public struct Warning: Sendable, Hashable {
        public let message: String
        public let host: String
    }

    /// libpq's `sslmode`s, weakest first: only `verify-full` checks both the certificate's CA and its name.
    static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// The warnings production logs for these connections; none in development, none for
    /// connections that stay on this machine.
    public static func warnings(
        environment: GatewayConfig.DeploymentEnvironment, redis: RedisConfiguration, postgres: PostgresTransport
    ) -> [Warning] {
        guard environment == .production else { return [] }
        return [self.redisWarning(redis), self.postgresWarning(postgres)].compactMap { $0 }
    }

    /// Redis without TLS (`redis://`) to a host that is not loopback.
    static func redisWarning(_ redis: RedisConfiguration) -> Warning? {
        let hosts = redis.isCluster ? redis.clusterSeeds.map(\.host) : [redis.host]
        guard !redis.tls, let remote = hosts.first(where: { !self.isLoopback($0) }) else { return nil }
        return Warning(message: "Redis is reached without TLS over the network: use a rediss:// REDIS_URL (and REDIS_CA_FILE for a private CA)", host: remote)
    }

    /// Postgres to a host that is not loopback, unencrypted (or possibly so, by its `sslmode`),
    /// or encrypted without `sslmode=verify-full` (a server that is not the one named could answer).
    static func postgresWarning(_ postgres: PostgresTransport) -> Warning? {
        guard let remote = postgres.hosts.first(where: { !self.isLoopback($0) }) else { return nil }
        let strength = self.sslModes.firstIndex(of: postgres.sslMode) ?? 0
        if postgres.encrypted == false || (postgres.encrypted == nil && strength < self.sslModes.firstIndex(of: "require")!) {
            return Warning(message: "Postgres is reached without TLS over the network: add sslmode=verify-full to DATABASE_URL", host: remote)
        }
        guard postgres.sslMode != "verify-full" else { return nil }
        return Warning(
            message: "Postgres's certificate is not checked against its host name (sslmode=\(postgres.sslMode)): use sslmode=verify-full in DATABASE_URL",
            host: remote
        )
    }

    /// This machine: `localhost`, 127.0.0.0/8, `::1`, or a Unix socket (a directory path, an
    /// abstract `@name`, or empty: libpq's default socket).
    public static func isLoopback(_ host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host.hasPrefix("/") || host.hasPrefix("@") { return true }
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

/// Redis's TLS could not be made at start-up: the server's certificate was not trusted, the server
/// does not speak TLS, or a certificate file cannot be read. `serve` refuses to start; retrying
/// would not help.
public struct RedisTLSRefusal: Error, CustomStringConvertible {
    public let redis: RedisConfiguration
    public let error: RedisError
    public var description: String { "REDIS_URL \(self.redis): \(self.error) (REDIS_CA_FILE names the CA to trust)" }
}

/// The start-up checks of the connections' security: asks Redis for `PING` once, and throws
/// ``RedisTLSRefusal`` when its TLS cannot be made (a Redis that is merely down is only logged:
/// readiness reports it and sessions work once it is up); then logs production's
/// ``TransportSecurity`` warnings. `postgres` is the live connection's transport when the database
/// answered, else the configuration's.
public func checkTransportSecurity(config: GatewayConfig, postgres: PostgresTransport, logger: Logger) async throws {
    var redisLogger = logger
    redisLogger[metadataKey: "subsystem"] = "redis"
    let redis = RedisClient(configuration: config.redis, logger: redisLogger)
    do {
        _ = try await redis.ping()
        await redis.shutdown()
    } catch let error as RedisError where error.isPermanentTLSFailure {
        await redis.shutdown()
        throw RedisTLSRefusal(redis: config.redis, error: error)
    } catch {
        await redis.shutdown()
        redisLogger.warning("Redis does not answer yet: USSD sessions fail until it does", metadata: ["error": .string(safeDescription(of: error))])
    }
    for warning in TransportSecurity.warnings(environment: config.environment, redis: config.redis, postgres: postgres) {
        logger.warning("\(warning.message)", metadata: ["host": .string(warning.host)])
    }
}
