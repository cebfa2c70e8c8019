import ConnectionPool
import Logging
import NIOCore
import ServiceLifecycle

/// An async Redis client over a bounded pool of pipelined hiredis connections, to one server or
/// to a Redis Cluster (``RedisConfiguration/isCluster``: each command goes to the primary of its
/// key's slot, see ``RedisCluster``).
///
/// hiredis blocks, so each connection has an I/O thread of its own (``RedisPipeline``) and callers
/// on the Swift concurrency pool or an event loop only await. Concurrent commands share round
/// trips. At most `maximumInFlight` commands are queued or awaiting replies; past that, callers
/// wait in line and fail with ``ConnectionPoolError/acquireTimeout(pool:waited:)``. Every command
/// goes out as argv, never as a format string built from values. As a `Service` it closes its
/// connections on graceful shutdown, after commands in flight finish. With `rediss://` every
/// connection speaks TLS and verifies the server's certificate (``RedisTLS``).
public final class RedisClient: Sendable, Service {
    public let configuration: RedisConfiguration
    /// One server's connections, or nil for a cluster.
    private let single: RedisNode?
    private let cluster: RedisCluster?
    private let permits: LeasePool<Permit>
    private let logger: Logger

    /// The right to have one command in flight.
    private struct Permit: Sendable {}

    /// With TLS (``RedisConfiguration/tls``) the client makes its one TLS context here, reading the
    /// CA file; a file that cannot be read fails every command with a `.tls` ``RedisError``.
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis")) {
        self.configuration = configuration
        self.logger = logger
        let tls = configuration.tls ? RedisTLS(configuration: configuration) : nil
        if configuration.isCluster {
            (self.single, self.cluster) = (nil, RedisCluster(configuration: configuration, tls: tls, logger: logger))
        } else {
            (self.single, self.cluster) = (RedisNode(configuration: configuration, tls: tls), nil)
        }
        self.permits = LeasePool(
            name: "redis",
            resources: Array(repeating: Permit(), count: configuration.maximumInFlight),
            acquireTimeout: configuration.acquireTimeout
        )
    }

    /// Waits for graceful shutdown, then lets in-flight commands finish and closes the pool.
    public func run() async throws {
        self.single?.start()
        await self.cluster?.start()
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Waits for commands in flight, then closes every connection; later calls fail.
    public func shutdown() async {
        await self.permits.shutdown()
        await self.single?.stop()
        await self.cluster?.stop()
    }

    /// Commands in flight and callers waiting for a place right now.
    public var poolUsage: (leased: Int, waiting: Int) { self.permits.usage }

    /// Sends any command as argv and returns its reply; the typed helpers below are preferred.
    @discardableResult
    public func send(_ arguments: [String]) async throws -> RedisValue {
        guard let single = self.single else { return try await self.send(bytes: arguments.map { Array($0.utf8) }) }
        let permit = try await self.permits.acquire()
        defer { self.permits.release(permit) }
        return try await single.send(.strings(arguments))
    }

    /// Sends a command whose arguments may be binary.
    @discardableResult
    public func send(bytes arguments: [[UInt8]]) async throws -> RedisValue {
        let permit = try await self.permits.acquire()
        defer { self.permits.release(permit) }
        if let single = self.single { return try await single.send(.bytes(arguments)) }
        return try await self.cluster!.send(arguments, timeout: self.configuration.commandTimeout)
    }

    /// Sends a command whose reply the caller does not need (an index, a pointer: writes whose
    /// failure fails nothing). On one server it is queued at once, ahead of whatever the caller
    /// sends next, so both leave in one write and no task is made; it still holds a place in
    /// `maximumInFlight` until its reply. With no place free right now, or on a cluster, it goes in
    /// a task of its own. The caller may wait for it to be settled (answered or failed).
    @discardableResult
    public func sendWithoutWaiting(_ arguments: [String]) -> RedisSent {
        if let single = self.single, let permit = self.permits.tryAcquire() {
            let reply = single.enqueue(.strings(arguments))
            reply.whenComplete { _ in self.permits.release(permit) }
            return RedisSent(reply: reply, task: nil)
        }
        return RedisSent(reply: nil, task: Task { (try? await self.send(arguments)) != nil })
    }

    /// Sends a command to one server: the only one, or a cluster node by its address.
    private func send(_ arguments: [String], to endpoint: RedisEndpoint?) async throws -> RedisValue {
        let permit = try await self.permits.acquire()
        defer { self.permits.release(permit) }
        let bytes = arguments.map { Array($0.utf8) }
        if let single = self.single { return try await single.send(.bytes(bytes)) }
        guard let endpoint else { return try await self.cluster!.send(bytes, timeout: self.configuration.commandTimeout) }
        return try await self.cluster!.node(endpoint).send(.bytes(bytes))
    }

    /// The servers holding keys: the one server, or every primary of the cluster.
    private func primaries() async throws -> [RedisEndpoint?] {
        guard let cluster = self.cluster else { return [nil] }
        if cluster.primaries.isEmpty { try await cluster.refresh() }
        return cluster.primaries
    }

    /// Sends a command without a key to the one server, or to every primary of a cluster (`INFO`,
    /// `SCRIPT LOAD`, `DBSIZE`): one reply per server.
    public func sendToEachPrimary(_ arguments: [String]) async throws -> [RedisValue] {
        try await withThrowingTaskGroup(of: RedisValue.self) { group in
            for endpoint in try await self.primaries() {
                group.addTask { try await self.send(arguments, to: endpoint) }
            }
            return try await group.reduce(into: [RedisValue]()) { $0.append($1) }
        }
    }

    /// Reads a cluster's slot map again now (a test's resharding, an operator's failover); nothing
    /// for one server.
    public func refreshTopology() async throws {
        try await self.cluster?.refresh()
    }

    /// `PING`; true when the server answered `PONG` (for a cluster: every primary did).
    public func ping() async throws -> Bool {
        try await self.sendToEachPrimary(["PING"]).allSatisfy { $0 == .status("PONG") }
    }

    /// `GET key` as UTF-8 text, nil when the key does not exist.
    public func get(_ key: String) async throws -> String? {
        let reply = try await self.send(["GET", key])
        if reply.isNull { return nil }
        guard case .bulk = reply else { throw Self.unexpected("GET", reply) }
        return reply.string
    }

    /// `GET key` as bytes, nil when the key does not exist.
    public func getBytes(_ key: String) async throws -> [UInt8]? {
        let reply = try await self.send(bytes: [Array("GET".utf8), Array(key.utf8)])
        switch reply {
        case .null: return nil
        case .bulk(let bytes): return bytes
        default: throw Self.unexpected("GET", reply)
        }
    }

    /// When `SET` writes.
    public enum SetCondition: Sendable {
        case always
        /// `NX`: only when the key does not exist.
        case ifNotExists
        /// `XX`: only when the key exists.
        case ifExists
    }

    /// `SET key value [EX seconds] [NX|XX]`; false when the condition kept it from writing.
    @discardableResult
    public func set(_ key: String, to value: String, expiresIn seconds: Int? = nil, condition: SetCondition = .always) async throws -> Bool {
        try await self.set(key, bytes: Array(value.utf8), expiresIn: seconds, condition: condition)
    }

    /// `SET` with a binary value.
    @discardableResult
    public func set(_ key: String, bytes value: [UInt8], expiresIn seconds: Int? = nil, condition: SetCondition = .always) async throws -> Bool {
        var arguments: [[UInt8]] = [Array("SET".utf8), Array(key.utf8), value]
        if let seconds {
            precondition(seconds > 0, "EX takes a positive number of seconds")
            arguments += [Array("EX".utf8), Array(String(seconds).utf8)]
        }
        switch condition {
        case .always: break
        case .ifNotExists: arguments.append(Array("NX".utf8))
        case .ifExists: arguments.append(Array("XX".utf8))
        }
        let reply = try await self.send(bytes: arguments)
        switch reply {
        case .status("OK"): return true
        case .null: return false
        default: throw Self.unexpected("SET", reply)
        }
    }

    /// `DEL key...`; how many keys existed.
    @discardableResult
    public func delete(_ keys: String...) async throws -> Int {
        try await self.delete(keys)
    }

    /// `DEL` of a list of keys; how many existed. On a cluster, one `DEL` per slot.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        guard self.cluster != nil else { return try await self.integer("DEL", ["DEL"] + keys) }
        let bySlot = Dictionary(grouping: keys, by: { ClusterSlot.of($0) })
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for slotKeys in bySlot.values {
                group.addTask { try await self.integer("DEL", ["DEL"] + slotKeys) }
            }
            return try await group.reduce(0, +)
        }
    }

    /// `EXPIRE key seconds`; false when the key does not exist.
    @discardableResult
    public func expire(_ key: String, seconds: Int) async throws -> Bool {
        try await self.integer("EXPIRE", ["EXPIRE", key, String(seconds)]) == 1
    }

    /// What `TTL` says of a key.
    public enum TimeToLive: Sendable, Hashable {
        case missing
        case persistent
        case seconds(Int)
    }

    /// `TTL key`.
    public func ttl(_ key: String) async throws -> TimeToLive {
        switch try await self.integer("TTL", ["TTL", key]) {
        case -2: return .missing
        case -1: return .persistent
        case let seconds: return .seconds(seconds)
        }
    }

    /// `INCR key`; the new value.
    public func increment(_ key: String) async throws -> Int {
        try await self.integer("INCR", ["INCR", key])
    }

    /// `EVAL script numkeys keys... args...`.
    @discardableResult
    public func eval(_ source: String, keys: [String] = [], arguments: [String] = []) async throws -> RedisValue {
        try await self.send(Self.scriptCall("EVAL", source, keys, arguments))
    }

    /// `EVALSHA sha numkeys keys... args...`.
    @discardableResult
    public func evalSHA(_ sha1: String, keys: [String] = [], arguments: [String] = []) async throws -> RedisValue {
        try await self.send(Self.scriptCall("EVALSHA", sha1, keys, arguments))
    }

    /// `command script numkeys keys... args...` as one argv, built in one allocation (every hop runs a script).
    private static func scriptCall(_ command: String, _ script: String, _ keys: [String], _ arguments: [String]) -> [String] {
        var call: [String] = []
        call.reserveCapacity(3 + keys.count + arguments.count)
        call.append(command)
        call.append(script)
        call.append(String(keys.count))
        call.append(contentsOf: keys)
        call.append(contentsOf: arguments)
        return call
    }

    /// Runs a script by its SHA-1, sending the source only when the server has not cached it
    /// (after a restart or `SCRIPT FLUSH`).
    @discardableResult
    public func run(_ script: RedisScript, keys: [String] = [], arguments: [String] = []) async throws -> RedisValue {
        do {
            return try await self.evalSHA(script.sha1, keys: keys, arguments: arguments)
        } catch let error as RedisError where error.isNoScript {
            return try await self.eval(script.source, keys: keys, arguments: arguments)
        }
    }

    /// Every key matching `pattern`, walking SCAN to its end on the server (on each primary of a
    /// cluster); never `KEYS`, which blocks the server.
    public func scanAll(matching pattern: String, count: Int = 500) async throws -> [String] {
        var keys: [String] = []
        for endpoint in try await self.primaries() {
            var cursor = "0"
            repeat {
                let reply = try await self.send(["SCAN", cursor, "MATCH", pattern, "COUNT", String(count)], to: endpoint)
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let found = parts[1].array else {
                    throw Self.unexpected("SCAN", reply)
                }
                keys += found.compactMap(\.string)
                cursor = next
            } while cursor != "0"
        }
        return keys
    }

    private func integer(_ command: String, _ arguments: [String]) async throws -> Int {
        let reply = try await self.send(arguments)
        guard case .integer(let value) = reply else { throw Self.unexpected(command, reply) }
        return value
    }

    private static func unexpected(_ command: String, _ reply: RedisValue) -> RedisError {
        let shape: String
        switch reply {
        case .null: shape = "null"
        case .status: shape = "status"
        case .integer: shape = "integer"
        case .bulk: shape = "bulk string"
        case .array: shape = "array"
        }
        return RedisError(code: .unexpectedReply, detail: "\(command) answered with a \(shape)")
    }
}

/// A command sent without waiting for its reply (``RedisClient/sendWithoutWaiting(_:)``).
public struct RedisSent: Sendable {
    let reply: EventLoopFuture<RedisValue>?
    let task: Task<Bool, Never>?

    /// Returns once the command was answered or failed: true when answered (not with an error).
    @discardableResult
    public func settled() async -> Bool {
        if let reply { return (try? await reply.get()) != nil }
        return await self.task?.value ?? false
    }
}

/// A command's argv on its way to one server: text arguments as they are, or bytes.
enum RedisArguments: Sendable {
    case strings([String])
    case bytes([[UInt8]])

    /// Roughly the bytes RESP takes: enough to write it without growing the buffer.
    var encodedCapacity: Int {
        switch self {
        case .strings(let arguments): arguments.reduce(0) { $0 + $1.utf8.count + 16 }
        case .bytes(let arguments): arguments.reduce(0) { $0 + $1.count + 16 }
        }
    }
}
