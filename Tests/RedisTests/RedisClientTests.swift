import ConnectionPool
import Redis
import Testing
import TestSupport

@Suite struct RedisClientTests {
    let redis: RedisClient
    let prefix: String

    init() throws {
        self.redis = RedisClient(configuration: try TestServers.redisConfiguration())
        self.prefix = TestServers.uniquePrefix("redis")
    }

    @Test func setGetDeleteRoundTrip() async throws {
        let key = self.prefix + "greeting"
        #expect(try await self.redis.get(key) == nil)
        #expect(try await self.redis.set(key, to: "habari"))
        #expect(try await self.redis.get(key) == "habari")
        #expect(try await self.redis.delete(key, self.prefix + "never-set") == 1)
        #expect(try await self.redis.get(key) == nil)
        await self.redis.shutdown()
    }

    @Test func setWithExpiryAndConditions() async throws {
        let key = self.prefix + "session"
        #expect(try await self.redis.ttl(key) == .missing)
        #expect(try await self.redis.set(key, to: "a", condition: .ifExists) == false)
        #expect(try await self.redis.set(key, to: "a", expiresIn: 120, condition: .ifNotExists))
        #expect(try await self.redis.set(key, to: "b", condition: .ifNotExists) == false, "NX must not overwrite")
        #expect(try await self.redis.get(key) == "a")
        guard case .seconds(let left) = try await self.redis.ttl(key) else { Issue.record("no TTL set"); return }
        #expect((1...120).contains(left))
        #expect(try await self.redis.set(key, to: "c", condition: .ifExists))
        #expect(try await self.redis.ttl(key) == .persistent, "a plain SET clears the expiry")
        #expect(try await self.redis.expire(key, seconds: 30))
        #expect(try await self.redis.expire(self.prefix + "absent", seconds: 30) == false)
        await self.redis.shutdown()
    }

    @Test func binaryValuesSurviveUnchanged() async throws {
        let key = self.prefix + "bytes"
        let bytes: [UInt8] = [0, 1, 2, 255, 13, 10, 0, 42]
        try await self.redis.set(key, bytes: bytes)
        #expect(try await self.redis.getBytes(key) == bytes)
        let spaced = "CON Karibu\r\n1. Salio\n2. Tuma pesa \"€\""
        try await self.redis.set(key, to: spaced)
        #expect(try await self.redis.get(key) == spaced, "argv must carry spaces, quotes and newlines verbatim")
        await self.redis.shutdown()
    }

    @Test func incrementCountsAndTypedServerErrors() async throws {
        let key = self.prefix + "counter"
        #expect(try await self.redis.increment(key) == 1)
        #expect(try await self.redis.increment(key) == 2)
        try await self.redis.set(key, to: "not a number")
        let error = await #expect(throws: RedisError.self) { try await self.redis.increment(key) }
        #expect(error?.code == .server)
        #expect(error?.serverCode == "ERR")
        #expect(error?.description.contains("not a number") == false, "descriptions must not repeat values")
        await self.redis.shutdown()
    }

    @Test func compareAndSetScriptRunsBySHAAndReloadsAfterFlush() async throws {
        let script = RedisScript(
            """
            local current = redis.call('GET', KEYS[1])
            if (current or '') ~= ARGV[1] then return 0 end
            redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
            return 1
            """
        )
        let key = self.prefix + "cas"
        try await self.redis.send(["SCRIPT", "FLUSH"])
        #expect(try await self.redis.run(script, keys: [key], arguments: ["", "v1", "120"]) == .integer(1))
        #expect(try await self.redis.run(script, keys: [key], arguments: ["", "v2", "120"]) == .integer(0), "stale version must lose")
        #expect(try await self.redis.run(script, keys: [key], arguments: ["v1", "v2", "120"]) == .integer(1))
        #expect(try await self.redis.get(key) == "v2")
        #expect(try await self.redis.evalSHA(script.sha1, keys: [key], arguments: ["v2", "v3", "120"]) == .integer(1), "the script is cached under its SHA-1")
        #expect(try await self.redis.eval("return {1, 'two', false}") == .array([.integer(1), .bulk(Array("two".utf8)), .null]))
        await self.redis.shutdown()
    }

    @Test func pingAndScanFindEveryMatchingKey() async throws {
        #expect(try await self.redis.ping())
        for index in 0..<250 { try await self.redis.set(self.prefix + "scan:\(index)", to: "x", expiresIn: 60) }
        let keys = try await self.redis.scanAll(matching: self.prefix + "scan:*", count: 50)
        #expect(Set(keys).count == 250)
        await self.redis.shutdown()
    }

    @Test func commandTimeoutDropsTheConnectionAndTheNextCallWorks() async throws {
        var configuration = try TestServers.redisConfiguration()
        configuration.poolSize = 1
        configuration.commandTimeout = .milliseconds(300)
        let redis = RedisClient(configuration: configuration)
        let error = await #expect(throws: RedisError.self) {
            try await redis.send(["BLPOP", self.prefix + "empty-list", "3"])
        }
        #expect(error?.code == .timeout)
        #expect(try await redis.ping(), "a fresh connection replaces the timed-out one")
        await redis.shutdown()
    }

    @Test func exhaustedPoolFailsWaitingCallersWithAClearTimeout() async throws {
        var configuration = try TestServers.redisConfiguration()
        configuration.poolSize = 1
        configuration.maximumInFlight = 1
        configuration.acquireTimeout = .milliseconds(200)
        configuration.commandTimeout = .seconds(5)
        let redis = RedisClient(configuration: configuration)
        // The only permit is held by a BLPOP that waits until another client pushes (10 s at most):
        // long enough that even a starved machine times the ping out first.
        let blocker = Task { try await redis.send(["BLPOP", self.prefix + "blocking-list", "10"]) }
        #expect(try await eventually { redis.poolUsage.leased > 0 })

        let error = await #expect(throws: ConnectionPoolError.self) { try await redis.ping() }

        #expect(error?.isAcquireTimeout == true)
        #expect(error?.description == "redis pool exhausted: no connection became free within 0.2 seconds")
        let other = RedisClient(configuration: try TestServers.redisConfiguration())
        try await other.send(["LPUSH", self.prefix + "blocking-list", "go"])
        await other.shutdown()
        _ = try await blocker.value
        #expect(try await redis.ping(), "the pool serves again once the connection is back")
        await redis.shutdown()
    }

    @Test func concurrentCommandsArePipelinedAndEachGetsItsOwnReply() async throws {
        // Given one connection and many concurrent callers
        var configuration = try TestServers.redisConfiguration()
        configuration.poolSize = 1
        let redis = RedisClient(configuration: configuration)
        let before = try await Self.commandCount(redis)

        // When 500 tasks each set and read back their own key
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<500 {
                group.addTask {
                    let key = self.prefix + "pipelined:\(index)"
                    try await redis.set(key, to: "value-\(index)", expiresIn: 60)
                    #expect(try await redis.get(key) == "value-\(index)", "replies must not be crossed between callers")
                }
            }
            try await group.waitForAll()
        }

        // Then every reply matched its command, and a server error stays with its own command
        await #expect(throws: RedisError.self) { try await redis.send(["NOSUCHCOMMAND"]) }
        #expect(try await redis.ping())
        #expect(try await Self.commandCount(redis) - before >= 1000)
        await redis.shutdown()
    }

    /// Commands the server (every primary of a cluster) has processed, from INFO stats' total.
    static func commandCount(_ redis: RedisClient) async throws -> Int {
        try await redis.sendToEachPrimary(["INFO", "stats"]).reduce(0) { total, reply in
            let info = reply.string ?? ""
            let line = info.split(separator: "\r\n").first { $0.hasPrefix("total_commands_processed:") } ?? ""
            return total + (Int(line.split(separator: ":").last ?? "") ?? 0)
        }
    }

    @Test func refusedConnectionIsATypedError() async throws {
        let server = try await PrivateServer.start(.redis)
        try await server.stop()
        let redis = RedisClient(configuration: server.redisConfiguration)
        let error = await #expect(throws: RedisError.self) { try await redis.ping() }
        #expect(error?.code == .connection)
        await redis.shutdown()
        await server.remove()
    }

    @Test func callsSucceedAgainAfterTheServerRestarts() async throws {
        // Given a client whose pooled connections are open
        let server = try await PrivateServer.start(.redis)
        var configuration = server.redisConfiguration
        configuration.poolSize = 4
        let redis = RedisClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 { group.addTask { try await redis.set("k\(index)", to: "v") } }
            try await group.waitForAll()
        }

        // When the server stops, calls fail cleanly; when it is back, they succeed on new connections
        try await server.stop()
        await #expect(throws: RedisError.self) { try await redis.ping() }
        try await server.start()
        for _ in 0..<8 {
            #expect(try await redis.ping())
        }
        #expect(try await redis.set("after", to: "restart"))
        await redis.shutdown()
        await server.remove()
    }

    @Test func urlsParseIntoConfigurations() throws {
        let full = try RedisConfiguration(url: "redis://:s3cret%21@cache.internal:6380/2")
        #expect(full.host == "cache.internal")
        #expect(full.port == 6380)
        #expect(full.password == "s3cret!")
        #expect(full.database == 2)
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.port == 6379 && plain.database == 0 && plain.password == nil)
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "http://localhost:6379") }
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "redis://localhost/abc") }
    }

    @Test func passwordAndDatabaseAreUsedOnConnect() async throws {
        let server = try await PrivateServer.start(.redis)
        let admin = RedisClient(configuration: server.redisConfiguration)
        try await admin.send(["CONFIG", "SET", "requirepass", "pa ss"])
        await admin.shutdown()

        let wrong = RedisClient(configuration: try RedisConfiguration(url: "redis://:nope@127.0.0.1:\(server.port)/0"))
        let error = await #expect(throws: RedisError.self) { try await wrong.ping() }
        #expect(error?.description.contains("nope") == false)
        await wrong.shutdown()

        let right = RedisClient(configuration: try RedisConfiguration(url: "redis://:pa%20ss@127.0.0.1:\(server.port)/3"))
        try await right.set("in-db-3", to: "yes")
        #expect(try await right.send(["CLIENT", "INFO"]).string?.contains("db=3") == true)
        await right.shutdown()
        await server.remove()
    }
}

@Suite struct RedisConfigurationDescriptionTests {
    @Test func descriptionNeverShowsThePassword() throws {
        #expect("\(try RedisConfiguration(url: "redis://:s3cret@cache:6380/2"))" == "redis://:***@cache:6380/2")
        #expect("\(try RedisConfiguration(url: "redis://cache"))" == "redis://cache:6379/0")
    }
}
