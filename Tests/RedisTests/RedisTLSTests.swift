import Foundation
@testable import Redis
import Testing
import TestSupport

/// `rediss://` and its settings, parsed: no server needed.
@Suite struct RedisTLSConfigurationTests {
    @Test func redissURLsTurnTLSOnAndRedisURLsLeaveItOff() throws {
        let single = try RedisConfiguration(url: "rediss://:s3cret@cache.internal:6380/2")
        #expect(single.tls && !single.isCluster)
        #expect(single.host == "cache.internal" && single.port == 6380 && single.database == 2 && single.password == "s3cret")
        #expect("\(single)" == "rediss://:***@cache.internal:6380/2")

        let cluster = try RedisConfiguration(url: "rediss+cluster://:s3cret@10.0.0.1:7000,cache-2:7001")
        #expect(cluster.tls && cluster.isCluster)
        #expect(cluster.clusterSeeds == [RedisEndpoint(host: "10.0.0.1", port: 7000), RedisEndpoint(host: "cache-2", port: 7001)])
        #expect("\(cluster)" == "rediss+cluster://:***@10.0.0.1:7000,cache-2:7001")

        #expect(try RedisConfiguration(url: "redis://cache").tls == false)
        #expect(try RedisConfiguration(url: "redis+cluster://a:7000").tls == false)
        #expect(try RedisConfiguration(url: "rediss://[::1]:6390").host == "::1", "an IPv6 host is kept bare, as the certificate check wants it")
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "redisss://cache") }
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "rediss+cluster://") }
    }

    @Test func everyClusterNodeIsReachedWithTheSameTLSSettings() throws {
        var cluster = try RedisConfiguration(url: "rediss+cluster://:pw@10.0.0.1:7000")
        cluster.tlsCAFile = "/etc/ussd/redis-ca.pem"
        cluster.tlsCertificateFile = "/etc/ussd/client.pem"
        cluster.tlsKeyFile = "/etc/ussd/client.key"

        // A node a MOVED reply or CLUSTER SLOTS names
        let node = cluster.node(RedisEndpoint(host: "10.0.0.9", port: 7005))

        #expect(node.tls && node.host == "10.0.0.9" && node.port == 7005 && !node.isCluster)
        #expect(node.tlsCAFile == "/etc/ussd/redis-ca.pem" && node.tlsCertificateFile == "/etc/ussd/client.pem" && node.tlsKeyFile == "/etc/ussd/client.key")
        #expect(node.password == "pw")
    }

    @Test func anIPAddressIsNeverSentAsTheServerName() {
        #expect(RedisTLS.isIPAddress("127.0.0.1"))
        #expect(RedisTLS.isIPAddress("::1"))
        #expect(RedisTLS.isIPAddress("fd00::2"))
        #expect(!RedisTLS.isIPAddress("localhost"))
        #expect(!RedisTLS.isIPAddress("redis.internal"))
    }

    @Test func aCAFileThatCannotBeReadFailsEveryCommandWithATLSError() async throws {
        var configuration = try RedisConfiguration(url: "rediss://:s3cret@127.0.0.1:1/0")
        configuration.tlsCAFile = "/nonexistent/ca.pem"
        let redis = RedisClient(configuration: configuration)

        let error = await #expect(throws: RedisError.self) { try await redis.ping() }

        #expect(error?.code == .tls)
        #expect(error?.description == "redis TLS failed: the CA file could not be read as PEM certificates")
        await redis.shutdown()
    }
}

/// A real Redis that speaks only TLS (`make test` starts it: `REDIS_TLS_URL`, its CA in
/// `REDIS_CA_FILE`, a password in the URL).
@Suite(.enabled(if: TestServers.redisTLSConfiguration != nil, "REDIS_TLS_URL is not set: make test starts a TLS-only Redis for these"))
struct RedisTLSTests {
    let configuration = TestServers.redisTLSConfiguration!
    let prefix = TestServers.uniquePrefix("tls")

    @Test func commandsRoundTripOverVerifiedTLSWithThePassword() async throws {
        // Given a client trusting the test CA, the server's certificate naming 127.0.0.1 in its IP SAN
        var configuration = self.configuration
        configuration.poolSize = 2
        let redis = RedisClient(configuration: configuration)

        // When commands go out concurrently
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask {
                    let key = self.prefix + "k\(index)"
                    try await redis.set(key, to: "v\(index)", expiresIn: 60)
                    #expect(try await redis.get(key) == "v\(index)")
                }
            }
            try await group.waitForAll()
        }

        // Then each got its reply, over TLS (the server has no plain port) and authenticated
        #expect(try await redis.ping())
        #expect(self.configuration.password?.isEmpty == false, "the TLS Redis of make test requires a password")
        await redis.shutdown()
    }

    @Test func aDNSNameInTheCertificateIsVerifiedToo() async throws {
        var configuration = self.configuration
        configuration.host = "localhost"
        let redis = RedisClient(configuration: configuration)
        #expect(try await redis.ping())
        await redis.shutdown()
    }

    @Test func aServerSignedByAnotherCAIsRefusedWithAClearError() async throws {
        // Given a client that trusts an unrelated CA
        let unrelated = try await TestCertificateAuthority.make()
        var configuration = self.configuration
        configuration.tlsCAFile = unrelated.certificatePath
        let redis = RedisClient(configuration: configuration)

        // When it sends a command
        let error = await #expect(throws: RedisError.self) { try await redis.ping() }

        // Then the command fails at the handshake, saying the certificate was not trusted, without the password
        #expect(error?.code == .tls)
        #expect(error?.description.contains("certificate was not trusted") == true, "\(String(describing: error))")
        #expect(error?.debugDescription.contains(self.configuration.password!) == false)
        let again = await #expect(throws: RedisError.self) { try await redis.ping() }
        #expect(again?.code == .tls, "a new connection is refused the same way")
        await redis.shutdown()
        unrelated.remove()
    }

    @Test func theSystemTrustRootsDoNotTrustThePrivateCA() async throws {
        var configuration = self.configuration
        configuration.tlsCAFile = nil
        let redis = RedisClient(configuration: configuration)
        let error = await #expect(throws: RedisError.self) { try await redis.ping() }
        #expect(error?.code == .tls)
        #expect(error?.description.contains("certificate was not trusted") == true, "\(String(describing: error))")
        await redis.shutdown()
    }

    @Test func aHostTheCertificateDoesNotNameIsRefused() async throws {
        // The server listens on ::1 as well, but its certificate names 127.0.0.1 and localhost only.
        var configuration = self.configuration
        configuration.host = "::1"
        let redis = RedisClient(configuration: configuration)
        let error = await #expect(throws: RedisError.self) { try await redis.ping() }
        #expect(error?.code == .tls, "\(String(describing: error))")
        #expect(error?.description.contains("does not name the host") == true, "\(String(describing: error))")
        await redis.shutdown()
    }

    @Test func aTLSClientToAPlainRedisFailsAsTLS() async throws {
        try await PrivateServer.with(.redis) { server in
            var configuration = server.redisConfiguration
            configuration.tls = true
            configuration.tlsCAFile = self.configuration.tlsCAFile
            let redis = RedisClient(configuration: configuration)
            let error = await #expect(throws: RedisError.self) { try await redis.ping() }
            #expect(error?.code == .tls, "\(String(describing: error))")
            await redis.shutdown()
        }
    }

    @Test func aServerThatAsksForAClientCertificateGetsTheConfiguredOne() async throws {
        // Given a TLS Redis of the test's own that requires a client certificate from its CA
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ussd-test-redis-mtls-\(UUID().uuidString.prefix(8))").path
        func remove() async {
            _ = try? await ChildProcess.run("/bin/bash", [PrivateServer.scriptPath, "stop-redis-tls", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }
        do {
            try await ChildProcess.run("/bin/bash", [PrivateServer.scriptPath, "start-redis-tls", directory, "mutual"])
            var configuration = try RedisConfiguration(url: try String(contentsOfFile: directory + "/url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
            configuration.tlsCAFile = directory + "/ca.pem"

            // When a client connects without a certificate, then one with the certificate and key
            let anonymous = RedisClient(configuration: configuration)
            await #expect(throws: RedisError.self) { try await anonymous.ping() }
            await anonymous.shutdown()
            configuration.tlsCertificateFile = directory + "/client.pem"
            configuration.tlsKeyFile = directory + "/client.key"
            let identified = RedisClient(configuration: configuration)

            // Then only the second is served
            #expect(try await identified.ping())
            await identified.shutdown()
        } catch {
            await remove()
            throw error
        }
        await remove()
    }
}
