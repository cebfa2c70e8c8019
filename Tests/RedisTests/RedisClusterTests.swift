import Foundation
import Redis
import Synchronization
import Testing
import TestSupport

/// The client on a real Redis Cluster of three primaries and three replicas (`make test` starts
/// it): slots as the servers compute them, keys on their own primary, redirects followed during a
/// slot migration, and a replica promoted in the middle of traffic.
@Suite struct RedisClusterTests {
    let control: ClusterControl
    let prefix: String

    init() throws {
        self.control = try ClusterControl()
        self.prefix = "{" + TestServers.uniquePrefix("cluster") + "}"
    }

    @Test func slotsAreTheOnesTheServersCompute() async throws {
        // The CRC16 check value of "123456789" (XMODEM) and the examples of the cluster specification.
        #expect(ClusterSlot.of("123456789") == 0x31C3)
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        let redis = RedisClient(configuration: self.control.configuration)
        var keys = ["", "{", "}", "{}", "{}x", "a{}b", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "ussd:s:{ATUid_1}", "ussd:rs:{ATUid_1}", "€{ü}"]
        for index in 0..<300 {
            keys.append("k\(index)-\(UUID().uuidString)")
            keys.append("x{\(index)}y")
        }
        for key in keys {
            let server = try await redis.send(["CLUSTER", "KEYSLOT", key]).int
            #expect(server == ClusterSlot.of(key), "slot of \(key)")
        }
        #expect(ClusterSlot.of("ussd:s:{ATUid_1}") == ClusterSlot.of("ussd:rs:{ATUid_1}"), "a session and its snapshot share a slot")
        await redis.shutdown()
    }

    @Test func everyKeyLivesOnThePrimaryOfItsSlotAndScriptsKeepToOneTag() async throws {
        // Read against a topology no other test is changing.
        try await ClusterControl.exclusively {
            let redis = RedisClient(configuration: self.control.configuration)
            let keys = (0..<200).map { _ in "test:cluster:\(UUID().uuidString)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for key in keys { group.addTask { try await redis.set(key, to: key, expiresIn: 60) } }
                try await group.waitForAll()
            }
            let primaries = try await self.control.nodes().filter { $0.isPrimary && !$0.slots.isEmpty }
            #expect(primaries.count == 3)
            var used = Set<RedisEndpoint>()
            for key in keys {
                let slot = ClusterSlot.of(key)
                let owner = try #require(primaries.first { $0.slots.contains { $0.contains(slot) } })
                used.insert(owner.endpoint)
                let stored = try await self.control.on(owner.endpoint) { try await $0.get(key) }
                #expect(stored == key, "\(key) is on the primary of slot \(slot)")
            }
            #expect(used.count == 3, "keys spread over every primary")
            #expect(try await redis.delete(keys) == keys.count, "DEL of keys in many slots goes slot by slot")

            // One script may touch keys of one hash tag; keys of two tags are refused by the server.
            let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1")
            #expect(try await redis.run(script, keys: [self.prefix + "a", self.prefix + "b"], arguments: ["v"]).int == 1)
            let crossing = await #expect(throws: RedisError.self) {
                try await redis.run(script, keys: ["{one}a", "{two}b"], arguments: ["v"])
            }
            #expect(crossing?.serverCode == "CROSSSLOT")
            #expect(try await redis.ping(), "PING answers for every primary")
            await redis.shutdown()
        }
    }

    @Test func aSlotMovedByHandIsFollowedThroughAskThenMoved() async throws {
        try await ClusterControl.exclusively {
            let redis = RedisClient(configuration: self.control.configuration)
            let (old, new) = (self.prefix + "old", self.prefix + "new")
            try await redis.set(old, to: "before the move", expiresIn: 120)
            let slot = ClusterSlot.of(old)
            let source = try await self.control.primary(ofSlot: slot)
            let target = try #require(try await self.control.nodes().first { $0.isPrimary && $0.id != source.id })

            do {
                // The operator starts moving the slot (as `redis-cli --cluster reshard` does).
                _ = try await self.control.on(target.endpoint) { try await $0.send(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id]) }
                _ = try await self.control.on(source.endpoint) { try await $0.send(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id]) }

                // A key the source no longer has is asked of the target (ASK, then ASKING on the same
                // connection); one it still has is served where it is.
                let askedBefore = try await Self.errorCount("ASK", on: source.endpoint, self.control)
                try await redis.set(new, to: "made during the move", expiresIn: 120)
                #expect(try await Self.errorCount("ASK", on: source.endpoint, self.control) > askedBefore, "the source answered ASK")
                #expect(try await redis.get(new) == "made during the move")
                #expect(try await redis.get(old) == "before the move")
                let onSource = try await self.control.on(source.endpoint) {
                    try await $0.send(["CLUSTER", "GETKEYSINSLOT", String(slot), "100"]).array?.compactMap(\.string) ?? []
                }
                #expect(onSource.contains(old) && !onSource.contains(new), "the new key was made on the target, not the source")

                _ = try await self.control.on(source.endpoint) {
                    try await $0.send(["MIGRATE", target.endpoint.host, String(target.endpoint.port), "", "0", "5000", "KEYS", old])
                }
                #expect(try await redis.get(old) == "before the move", "a migrated key is found on the target through ASK")

                // The move ends: every primary names the target. The client learns it from MOVED once.
                for node in [target, source] + (try await self.control.nodes().filter { $0.isPrimary && $0.id != source.id && $0.id != target.id }) {
                    _ = try await self.control.on(node.endpoint) { try await $0.send(["CLUSTER", "SETSLOT", String(slot), "NODE", target.id]) }
                }
            } catch {
                // A move that failed half way is called off, so the cluster stays whole for the tests after.
                for node in [target, source] {
                    _ = try? await self.control.on(node.endpoint) { try await $0.send(["CLUSTER", "SETSLOT", String(slot), "STABLE"]) }
                }
                throw error
            }
            let movedBefore = try await Self.errorCount("MOVED", on: source.endpoint, self.control)
            for _ in 0..<20 {
                #expect(try await redis.get(old) == "before the move")
                #expect(try await redis.get(new) == "made during the move")
            }
            let movedAfter = try await Self.errorCount("MOVED", on: source.endpoint, self.control)
            #expect(movedAfter - movedBefore <= 2, "after one MOVED the client goes straight to the new owner (\(movedAfter - movedBefore) redirects)")
            await redis.shutdown()
        }
    }

    @Test func aReplicaPromotedMidTrafficLosesNoWriteAndRepeatsNone() async throws {
        try await ClusterControl.exclusively {
            let redis = RedisClient(configuration: self.control.configuration)
            let keys = (0..<16).map { self.prefix + "counter:\($0)" }
            let tally = Tally(keys.count)

            // Sixteen writers increment their own counters as fast as they can. The counters share
            // the test's hash tag, so all sit in one slot, whose primary is failed over.
            let victim = try await self.control.primary(ofSlot: ClusterSlot.of(keys[0]))
            let writers = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, key) in keys.enumerated() {
                        group.addTask {
                            while !tally.done.load(ordering: .relaxed) && !Task.isCancelled {
                                do {
                                    let value = try await redis.increment(key)
                                    tally.counted.withLock { $0[index] += 1 }
                                    _ = tally.total.add(1, ordering: .relaxed)
                                    if value != tally.counted.withLock({ $0[index] }) {
                                        tally.failures.withLock { $0.append("\(key) answered \(value)") }
                                    }
                                } catch {
                                    tally.failures.withLock { $0.append("\(error)") }
                                    // A client's back-off after an error, as an application's.
                                    try await Task.sleep(for: .milliseconds(10))
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let promoted: ClusterControl.Node
            do {
                defer { tally.done.store(true, ordering: .relaxed) }
                try await self.control.waitUntil(within: .seconds(20)) { tally.total.load(ordering: .relaxed) >= 500 }
                promoted = try await self.control.failover(victim)
                let atFailover = tally.total.load(ordering: .relaxed)
                try await self.control.waitUntil(within: .seconds(20)) { tally.total.load(ordering: .relaxed) >= atFailover + 500 }
            }
            try await writers.value

            #expect(tally.failures.withLock { $0 } == [], "every increment answered once, in order")
            for (index, key) in keys.enumerated() {
                #expect(try await redis.get(key).flatMap { Int($0) } == tally.counted.withLock { $0[index] }, "\(key): no write lost or applied twice")
            }
            #expect(try await self.control.primary(ofSlot: ClusterSlot.of(keys[0])).id == promoted.id, "the replica serves the slot now")
            await redis.shutdown()
        }
    }

    /// How many error replies of `code` (`MOVED`, `ASK`) a node has sent, from `INFO errorstats`.
    static func errorCount(_ code: String, on endpoint: RedisEndpoint, _ control: ClusterControl) async throws -> Int {
        let info = try await control.on(endpoint) { try await $0.send(["INFO", "errorstats"]).string ?? "" }
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("errorstat_\(code):") }),
            let count = line.split(separator: "=").last.flatMap({ Int($0) })
        else { return 0 }
        return count
    }
}

/// What the writers of the failover test counted.
final class Tally: Sendable {
    let counted: Mutex<[Int]>
    let failures = Mutex<[String]>([])
    let total = Atomic<Int>(0)
    let done = Atomic<Bool>(false)

    init(_ keys: Int) { self.counted = Mutex([Int](repeating: 0, count: keys)) }
}

@Suite struct RedisClusterConfigurationTests {
    @Test func clusterURLsNameTheirSeedsAndNeverThePassword() throws {
        let cluster = try RedisConfiguration(url: "redis+cluster://:s3cret%21@10.0.0.1:7000,10.0.0.2:7001,cache-3")
        #expect(cluster.isCluster)
        #expect(cluster.clusterSeeds == [
            RedisEndpoint(host: "10.0.0.1", port: 7000), RedisEndpoint(host: "10.0.0.2", port: 7001), RedisEndpoint(host: "cache-3", port: 6379),
        ])
        #expect(cluster.password == "s3cret!")
        #expect("\(cluster)" == "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7001,cache-3:6379")
        #expect(try RedisConfiguration(url: "redis+cluster://[::1]:7000").clusterSeeds == [RedisEndpoint(host: "::1", port: 7000)])
        #expect(try RedisConfiguration(url: "redis+cluster://a:7000/0").clusterSeeds.count == 1)
        #expect(try RedisConfiguration(url: "redis://a:7000/0").isCluster == false)
        for bad in ["redis+cluster://", "redis+cluster://a:7000/2", "redis+cluster://a:7000,,b:7001", "redis+cluster://a:99999", "redis+cluster://a:7000/x"] {
            #expect(throws: RedisConfigurationError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }
}
