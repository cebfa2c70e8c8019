import Logging
import Synchronization

/// The client side of a Redis Cluster: which primary serves each of the 16384 slots, a
/// ``RedisNode`` (pipelined connections) per server, and the routing of each command to the
/// primary of its key's slot.
///
/// The slot map comes from `CLUSTER SLOTS`, asked of a known primary or else of a seed. `MOVED`
/// updates the slot at once and refreshes the whole map in the background (a failover or a
/// resharding moved it); `ASK` sends the command once more to the importing node, after `ASKING` on
/// the same connection. Refusals that pass (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`) and nodes that
/// cannot be reached before a command was written are retried with a short backoff, re-reading
/// the map, for up to the command timeout. A command whose connection broke after it was written
/// is not sent again: it may have run.
final class RedisCluster: Sendable {
    /// Most redirects one command follows (a map in motion settles long before).
    static let maximumRedirects = 16
    /// Background refreshes after `MOVED` or a broken connection come at most this often.
    static let refreshInterval = Duration.milliseconds(100)

    private struct State {
        /// The primary of each slot: an index into `primaries`, or -1 while nobody serves it.
        var owners = [Int16](repeating: -1, count: ClusterSlot.count)
        var primaries: [RedisEndpoint] = []
        /// Every server this client has spoken to; kept after a failover (the old primary may
        /// come back as a replica and later be promoted again).
        var nodes: [RedisEndpoint: RedisNode] = [:]
        var refreshing: Task<Void, any Error>?
        var lastRefresh: ContinuousClock.Instant?
        var started = false
        var stopped = false
    }

    private let configuration: RedisConfiguration
    /// The client's TLS context, shared by every node: one a redirect names is reached as a seed is.
    private let tls: RedisTLS?
    private let logger: Logger
    private let state = Mutex(State())

    init(configuration: RedisConfiguration, tls: RedisTLS?, logger: Logger) {
        self.configuration = configuration
        self.tls = tls
        self.logger = logger
    }

    // MARK: Nodes

    /// The node for a server, made on first use.
    func node(_ endpoint: RedisEndpoint) throws(RedisError) -> RedisNode {
        let node: RedisNode? = self.state.withLock { state in
            if state.stopped { return nil }
            if let node = state.nodes[endpoint] { return node }
            let node = RedisNode(configuration: self.configuration.node(endpoint), tls: self.tls)
            state.nodes[endpoint] = node
            if state.started { node.start() }
            return node
        }
        guard let node else { throw RedisError(code: .connection, detail: "client shut down") }
        return node
    }

    /// The primaries in the current map (empty before the first refresh).
    var primaries: [RedisEndpoint] { self.state.withLock { $0.primaries } }

    /// Learns the map (so the first command does not wait for it) and starts the I/O threads.
    func start() async {
        let nodes = self.state.withLock { state in
            state.started = true
            return Array(state.nodes.values)
        }
        for node in nodes { node.start() }
        do {
            try await self.refresh()
        } catch {
            self.logger.warning("redis cluster: no seed answered CLUSTER SLOTS yet", metadata: ["error": .string("\(error)")])
        }
    }

    /// Waits for commands in flight on every node, then closes them all.
    func stop() async {
        let (nodes, refreshing) = self.state.withLock { state in
            state.stopped = true
            return (Array(state.nodes.values), state.refreshing)
        }
        refreshing?.cancel()
        for node in nodes { await node.stop() }
    }

    // MARK: Routing

    /// Sends a command to the primary of its key's slot (any primary for a command without a key),
    /// following redirects and retrying what did not run.
    func send(_ arguments: [[UInt8]], timeout: Duration) async throws -> RedisValue {
        let slot = ClusterSlot.keyIndex(arguments).map { ClusterSlot.of(arguments[$0]) }
        let deadline = ContinuousClock.now + timeout
        var ask: RedisEndpoint?
        var attempt = 0
        while true {
            attempt += 1
            let node: RedisNode
            if let ask { node = try self.node(ask) } else { node = try await self.owner(of: slot) }
            let asking = ask != nil
            ask = nil
            do {
                return try await node.send(.bytes(arguments), asking: asking)
            } catch let error as RedisError {
                if let redirect = error.redirect, attempt < Self.maximumRedirects {
                    if redirect.moved {
                        self.learn(slot: redirect.slot, owner: redirect.endpoint)
                        self.refreshSoon()
                    } else {
                        ask = redirect.endpoint
                    }
                    continue
                }
                // A TLS failure (an untrusted certificate) is not retried: it will not pass.
                let retriable = !error.isPermanentTLSFailure && (error.isClusterTransient || error.serverCode == "LOADING" || error.notSent)
                if retriable, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(min(20 * attempt, 200)))
                    try? await self.refresh()
                    continue
                }
                if error.code == .connection || error.code == .timeout { self.refreshSoon() }
                throw error
            }
        }
    }

    /// The node serving a slot (nil slot: any primary), refreshing the map when it has none.
    private func owner(of slot: Int?) async throws -> RedisNode {
        for attempt in 0..<2 {
            let endpoint: RedisEndpoint? = self.state.withLock { state in
                guard !state.primaries.isEmpty else { return nil }
                guard let slot else { return state.primaries[0] }
                let owner = Int(state.owners[slot])
                return owner >= 0 ? state.primaries[owner] : nil
            }
            if let endpoint { return try self.node(endpoint) }
            if attempt == 0 { try await self.refresh() }
        }
        var error = RedisError(code: .server, serverCode: "CLUSTERDOWN", detail: "no node serves the slot")
        error.notSent = true
        throw error
    }

    /// A `MOVED` reply: the slot's owner, until the next refresh says more.
    private func learn(slot: Int, owner: RedisEndpoint) {
        self.state.withLock { state in
            if let index = state.primaries.firstIndex(of: owner) {
                state.owners[slot] = Int16(index)
            } else if state.primaries.count < Int(Int16.max) {
                state.primaries.append(owner)
                state.owners[slot] = Int16(state.primaries.count - 1)
            }
        }
    }

    // MARK: The slot map

    /// Reads the map again soon, in the background, unless it was read just now.
    func refreshSoon() {
        let due = self.state.withLock { state in
            guard state.refreshing == nil, !state.stopped else { return false }
            if let last = state.lastRefresh, ContinuousClock.now - last < Self.refreshInterval { return false }
            return true
        }
        guard due else { return }
        Task { try? await self.refresh() }
    }

    /// Reads the slot map from the first node that answers; callers at the same time share one read.
    func refresh() async throws {
        let task: Task<Void, any Error> = self.state.withLock { state in
            if let running = state.refreshing { return running }
            let task = Task { try await self.readSlots() }
            state.refreshing = task
            return task
        }
        defer {
            self.state.withLock { state in
                if state.refreshing == task { state.refreshing = nil }
            }
        }
        try await task.value
    }

    private func readSlots() async throws {
        defer { self.state.withLock { $0.lastRefresh = ContinuousClock.now } }
        var candidates = self.primaries
        for seed in self.configuration.clusterSeeds where !candidates.contains(seed) { candidates.append(seed) }
        var last: any Error = RedisError(code: .connection, detail: "no cluster seed")
        for endpoint in candidates {
            do {
                let reply = try await self.node(endpoint).send(.strings(["CLUSTER", "SLOTS"]))
                let map = try Self.slotMap(reply, askedOf: endpoint)
                guard !map.primaries.isEmpty else { throw RedisError(code: .unexpectedReply, detail: "CLUSTER SLOTS named no slots") }
                let changed = self.state.withLock { state in
                    let changed = state.primaries != map.primaries || state.owners != map.owners
                    (state.owners, state.primaries) = (map.owners, map.primaries)
                    return changed
                }
                if changed {
                    self.logger.info("redis cluster slot map", metadata: ["primaries": .string(map.primaries.map(\.description).joined(separator: ","))])
                }
                return
            } catch {
                last = error
            }
        }
        throw last
    }

    /// `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replicas...], ...]`. An empty or
    /// `?` host means the node asked.
    static func slotMap(_ reply: RedisValue, askedOf asked: RedisEndpoint) throws(RedisError) -> (owners: [Int16], primaries: [RedisEndpoint]) {
        guard let ranges = reply.array else { throw RedisError(code: .unexpectedReply, detail: "CLUSTER SLOTS is not an array") }
        var owners = [Int16](repeating: -1, count: ClusterSlot.count)
        var primaries: [RedisEndpoint] = []
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                0 <= start, start <= end, end < ClusterSlot.count,
                let primary = parts[2].array, primary.count >= 2, let port = primary[1].int, (1...65535).contains(port)
            else { throw RedisError(code: .unexpectedReply, detail: "CLUSTER SLOTS has a malformed range") }
            var host = primary[0].string ?? ""
            if host.isEmpty || host == "?" { host = asked.host }
            let endpoint = RedisEndpoint(host: host, port: port)
            let index: Int
            if let known = primaries.firstIndex(of: endpoint) {
                index = known
            } else {
                primaries.append(endpoint)
                index = primaries.count - 1
            }
            guard index < Int(Int16.max) else { throw RedisError(code: .unexpectedReply, detail: "CLUSTER SLOTS names too many primaries") }
            for slot in start...end { owners[slot] = Int16(index) }
        }
        return (owners, primaries)
    }
}
