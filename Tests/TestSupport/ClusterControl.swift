import Foundation
import Redis

extension TestServers {
    /// The Redis Cluster `make test` started (three primaries, three replicas), from
    /// `REDIS_CLUSTER_URL`.
    public static func redisClusterConfiguration() throws -> RedisConfiguration {
        guard let url = ProcessInfo.processInfo.environment["REDIS_CLUSTER_URL"] else {
            throw TestSetupError("REDIS_CLUSTER_URL is not set: run the tests with `make test`")
        }
        return try RedisConfiguration(url: url)
    }
}

/// The test cluster seen node by node, through plain one-server clients: who is primary, who
/// replicates whom, and the operator's moves (a manual failover, a slot moved by hand).
///
/// Tests that change the topology run one at a time (``exclusively(_:)``), even across test
/// targets: two failovers at once, or a failover during a slot migration, is not what they test.
public struct ClusterControl: Sendable {
    public struct Node: Sendable, Hashable {
        public let id: String
        public let endpoint: RedisEndpoint
        public let isPrimary: Bool
        /// For a replica: its primary's id.
        public let primaryID: String?
        /// For a primary: the slot ranges it serves, as `CLUSTER NODES` prints them.
        public let slots: [ClosedRange<Int>]
    }

    public let configuration: RedisConfiguration

    public init() throws {
        self.configuration = try TestServers.redisClusterConfiguration()
    }

    /// Runs `body` while no other topology-changing test runs.
    public static func exclusively<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await topologyLock.acquire()
        do {
            let result = try await body()
            await topologyLock.release()
            return result
        } catch {
            await topologyLock.release()
            throw error
        }
    }

    private static let topologyLock = AsyncLock()

    /// Runs `body` with a one-server client of `endpoint`.
    public func on<T: Sendable>(_ endpoint: RedisEndpoint, _ body: (RedisClient) async throws -> T) async throws -> T {
        let client = RedisClient(configuration: self.direct(endpoint))
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Settings for talking to one node as if it were a lone server.
    public func direct(_ endpoint: RedisEndpoint) -> RedisConfiguration {
        var single = RedisConfiguration(host: endpoint.host, port: endpoint.port, password: self.configuration.password, username: self.configuration.username)
        single.commandTimeout = .seconds(5)
        return single
    }

    /// Every node, as the first seed that answers `CLUSTER NODES` sees them (failed nodes left out).
    public func nodes() async throws -> [Node] {
        var lastError: (any Error)?
        for seed in self.configuration.clusterSeeds {
            do {
                let text = try await self.on(seed) { try await $0.send(["CLUSTER", "NODES"]).string ?? "" }
                return Self.parseNodes(text, seed: seed)
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TestSetupError("no cluster seed")
    }

    static func parseNodes(_ text: String, seed: RedisEndpoint) -> [Node] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 8 else { return nil }
            let flags = fields[2].split(separator: ",")
            guard !flags.contains("fail"), !flags.contains("handshake"), !flags.contains("noaddr") else { return nil }
            let address = fields[1].split(separator: "@")[0]
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
            let host = address[..<colon].isEmpty ? seed.host : String(address[..<colon])
            let slots: [ClosedRange<Int>] = fields.dropFirst(8).compactMap { field in
                guard !field.hasPrefix("[") else { return nil }
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                return bounds.count == 2 ? bounds[0]...bounds[1] : bounds.count == 1 ? bounds[0]...bounds[0] : nil
            }
            let isPrimary = flags.contains("master")
            return Node(
                id: String(fields[0]), endpoint: RedisEndpoint(host: host, port: port), isPrimary: isPrimary,
                primaryID: isPrimary ? nil : String(fields[3]), slots: slots
            )
        }
    }

    /// The primary serving `slot` right now.
    public func primary(ofSlot slot: Int) async throws -> Node {
        guard let node = try await self.nodes().first(where: { $0.isPrimary && $0.slots.contains { $0.contains(slot) } }) else {
            throw TestSetupError("no primary serves slot \(slot)")
        }
        return node
    }

    /// Promotes a replica of `primary` with `CLUSTER FAILOVER` (the operator's manual failover: the
    /// replica catches up first, so no acknowledged write is lost) and waits until every node
    /// agrees it serves the slots. Returns the promoted node.
    @discardableResult
    public func failover(_ primary: Node, within limit: Duration = .seconds(30)) async throws -> Node {
        guard let replica = try await self.nodes().first(where: { $0.primaryID == primary.id }) else {
            throw TestSetupError("primary \(primary.endpoint) has no replica")
        }
        // The replica must be in sync before a manual failover can start.
        try await self.waitUntil(within: limit) {
            let info = try await self.on(replica.endpoint) { try await $0.send(["INFO", "replication"]).string ?? "" }
            return info.contains("master_link_status:up")
        }
        _ = try await self.on(replica.endpoint) { try await $0.send(["CLUSTER", "FAILOVER"]) }
        try await self.waitUntil(within: limit) {
            let nodes = try await self.nodes()
            guard let promoted = nodes.first(where: { $0.id == replica.id }), promoted.isPrimary else { return false }
            return try await self.everyNodeAgrees(primary: replica.id, replica: primary.id)
        }
        return try await self.nodes().first { $0.id == replica.id }!
    }

    /// True when every reachable node's `CLUSTER NODES` lists `id` as a primary and `replica` as a
    /// replica, and says the cluster is ok.
    func everyNodeAgrees(primary id: String, replica: String) async throws -> Bool {
        for node in try await self.nodes() {
            let (text, info) = try await self.on(node.endpoint) {
                (try await $0.send(["CLUSTER", "NODES"]).string ?? "", try await $0.send(["CLUSTER", "INFO"]).string ?? "")
            }
            guard info.contains("cluster_state:ok"),
                Self.parseNodes(text, seed: node.endpoint).contains(where: { $0.id == id && $0.isPrimary }),
                Self.parseNodes(text, seed: node.endpoint).contains(where: { $0.id == replica && !$0.isPrimary })
            else { return false }
        }
        return true
    }

    /// Polls `condition` every 50 ms until it holds.
    public func waitUntil(within limit: Duration, _ condition: () async throws -> Bool) async throws {
        let end = ContinuousClock.now + limit
        if try await eventually(within: limit, every: .milliseconds(50), { (try? await condition()) == true }) { return }
        throw TestSetupError("the cluster did not settle within \(limit)")
    }
}

/// A lock that suspends instead of blocking a thread.
actor AsyncLock {
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !self.held {
            self.held = true
            return
        }
        await withCheckedContinuation { self.waiters.append($0) }
    }

    func release() {
        if self.waiters.isEmpty {
            self.held = false
        } else {
            self.waiters.removeFirst().resume()
        }
    }
}
