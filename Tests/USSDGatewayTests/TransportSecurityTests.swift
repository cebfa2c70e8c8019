import Foundation
@testable import GatewayTestSupport
import Postgres
import Redis
import Settings
import Testing
import TestSupport
import USSDGateway

/// Production's start-up warnings about Redis and Postgres in the clear, and the refusal of a
/// Redis whose certificate is not trusted.
@Suite struct TransportSecurityTests {
    let local = PostgresTransport(hosts: ["127.0.0.1"], sslMode: "prefer", encrypted: false)

    @Test func loopbackHostsAndSocketsStayOnThisMachine() {
        for host in ["127.0.0.1", "127.3.2.1", "localhost", "LOCALHOST", "::1", "[::1]", "", "/var/run/postgresql", "@abstract"] {
            #expect(TransportSecurity.isLoopback(host), "\(host)")
        }
        for host in ["10.0.0.5", "redis.internal", "128.0.0.1", "127.0.0.1.example.com", "fd00::2", "0.0.0.0"] {
            #expect(!TransportSecurity.isLoopback(host), "\(host)")
        }
    }

    @Test func productionWarnsAboutRedisWithoutTLSOnAnotherHost() throws {
        let remote = try RedisConfiguration(url: "redis://:pw@redis.internal:6379/0")
        let warnings = TransportSecurity.warnings(environment: .production, redis: remote, postgres: self.local)
        #expect(warnings.count == 1)
        #expect(warnings.first?.host == "redis.internal")
        #expect(warnings.first?.message.contains("rediss://") == true)

        #expect(TransportSecurity.warnings(environment: .development, redis: remote, postgres: self.local).isEmpty, "development never warns")
        #expect(TransportSecurity.warnings(environment: .production, redis: try RedisConfiguration(url: "rediss://:pw@redis.internal"), postgres: self.local).isEmpty)
        #expect(TransportSecurity.warnings(environment: .production, redis: try RedisConfiguration(url: "redis://127.0.0.1"), postgres: self.local).isEmpty)
        let cluster = try RedisConfiguration(url: "redis+cluster://127.0.0.1:7000,10.0.0.7:7001")
        #expect(TransportSecurity.warnings(environment: .production, redis: cluster, postgres: self.local).map(\.host) == ["10.0.0.7"])
    }

    @Test func productionWarnsAboutPostgresUnencryptedOrUnverifiedOnAnotherHost() throws {
        let redis = try RedisConfiguration(url: "redis://127.0.0.1")
        func warning(_ transport: PostgresTransport) -> String? {
            let warnings = TransportSecurity.warnings(environment: .production, redis: redis, postgres: transport)
            #expect(warnings.count <= 1)
            return warnings.first?.message
        }
        // Connected: libpq says whether TLS is in use
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "prefer", encrypted: false))?.contains("without TLS") == true)
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "require", encrypted: true))?.contains("sslmode=require") == true)
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "verify-ca", encrypted: true))?.contains("verify-full") == true)
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "verify-full", encrypted: true)) == nil)
        // Not connected yet: DATABASE_URL's sslmode decides
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "prefer", encrypted: nil))?.contains("without TLS") == true)
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "require", encrypted: nil))?.contains("sslmode=require") == true)
        #expect(warning(PostgresTransport(hosts: ["db.internal"], sslMode: "verify-full", encrypted: nil)) == nil)
        // This machine: nothing crosses the network
        #expect(warning(PostgresTransport(hosts: ["/var/run/postgresql"], sslMode: "prefer", encrypted: false)) == nil)
        #expect(warning(PostgresTransport(hosts: ["localhost"], sslMode: "disable", encrypted: false)) == nil)
    }

    @Test func theGatewayReadsTheRedisCAAndClientCertificate() throws {
        let environment = [
            "ENVIRONMENT": "development", "REDIS_URL": "rediss://:pw@redis.internal:6380/0", "REDIS_CA_FILE": "/etc/ussd/redis-ca.pem",
            "REDIS_TLS_CERT_FILE": "/etc/ussd/client.pem", "REDIS_TLS_KEY_FILE": "/etc/ussd/client.key",
        ]
        let config = try GatewayConfig.load(environment: environment)
        #expect(config.redis.tls && config.redis.tlsCAFile == "/etc/ussd/redis-ca.pem")
        #expect(config.redis.tlsCertificateFile == "/etc/ussd/client.pem" && config.redis.tlsKeyFile == "/etc/ussd/client.key")

        let error = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: environment.filter { $0.key != "REDIS_TLS_KEY_FILE" })
        }
        #expect(error?.variable == "REDIS_TLS_KEY_FILE")
    }
}

/// The gateway's start against the TLS-only Redis of `make test`.
@Suite(.enabled(if: TestServers.redisTLSConfiguration != nil, "REDIS_TLS_URL is not set: make test starts a TLS-only Redis for these"))
struct RedisTLSStartupTests {
    let tls = TestServers.redisTLSConfiguration!

    @Test func startupPassesWithTheRightCAAndRefusesAnUntrustedCertificate() async throws {
        var config = GatewayConfig()
        config.environment = .development
        config.redis = self.tls
        try await checkTransportSecurity(config: config, postgres: PostgresTransport(hosts: [""], sslMode: "prefer", encrypted: false), logger: .init(label: "test"))

        let unrelated = try await TestCertificateAuthority.make()
        config.redis.tlsCAFile = unrelated.certificatePath
        let refusal = await #expect(throws: RedisTLSRefusal.self) {
            try await checkTransportSecurity(config: config, postgres: PostgresTransport(hosts: [""], sslMode: "prefer", encrypted: false), logger: .init(label: "test"))
        }
        #expect(refusal?.description.contains("certificate was not trusted") == true, "\(String(describing: refusal))")
        #expect(refusal?.description.contains(self.tls.password!) == false)
        unrelated.remove()
    }

    @Test func serveRefusesToStartWithOneLineWhenRedisCertificateIsNotTrusted() async throws {
        // Given the gateway's REDIS_URL on the TLS Redis, trusting an unrelated CA
        let unrelated = try await TestCertificateAuthority.make()
        var environment = ProcessInfo.processInfo.environment
        environment["ENVIRONMENT"] = "development"
        environment["LOG_LEVEL"] = "warning"
        environment["MENUS_PATH"] = RepoFiles.menus
        environment["HTTP_PORT"] = String(try await PrivateServer.freePort())
        environment["REDIS_URL"] = ProcessInfo.processInfo.environment["REDIS_TLS_URL"]
        environment["REDIS_CA_FILE"] = unrelated.certificatePath

        // When it serves
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        let status = await server.wait()

        // Then it exits 2 with one line naming the problem, and never the password
        #expect(status == 2, "\(server.errorOutput)")
        let refusals = server.errorOutput.split(separator: "\n").filter { $0.contains("refusing to start") }
        #expect(refusals.count == 1, "\(server.errorOutput)")
        #expect(refusals.first?.contains("REDIS_URL rediss://:***@127.0.0.1:") == true, "\(server.errorOutput)")
        #expect(refusals.first?.contains("certificate was not trusted") == true, "\(server.errorOutput)")
        #expect(!server.errorOutput.contains(self.tls.password!))
        unrelated.remove()
    }
}
