import ConnectionPool
import Logging
import ServiceLifecycle

/// An async Redis client over a bounded pool of pipelined hiredis connections.
///
/// hiredis blocks, so each connection has an I/O thread of its own (``RedisPipeline``) and callers
/// on the Swift concurrency pool or an event loop only await. Concurrent commands share round
/// trips. At most `maximumInFlight` commands are queued or awaiting replies; past that, callers
/// wait in line and fail with ``ConnectionPoolError/acquireTimeout(pool:waited:)``. Every command
/// goes out as argv, never as a format string built from values. As a `Service` it closes its
/// connections on graceful shutdown, after commands in flight finish.
public final class RedisClient: Sendable, Service {
    public let configuration: RedisConfiguration
    private let pipelines: [RedisPipeline]
    private let permits: LeasePool<Permit>
    private let logger: Logger

    /// The right to have one command in flight.
    private struct Permit: Sendable {}

    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis")) {
        self.configuration = configuration
        self.logger = logger
        self.pipelines = (0..<configuration.poolSize).map { RedisPipeline(configuration: configuration, index: $0) }
        self.permits = LeasePool(
            name: "redis",
            resources: Array(repeating: Permit(), count: configuration.maximumInFlight),
            acquireTimeout: configuration.acquireTimeout
        )
    }

    /// Waits for graceful shutdown, then lets in-flight commands finish and closes the pool.
    public func run() async throws {
        for pipeline in self.pipelines { pipeline.start() }
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Waits for commands in flight, then closes every connection; later calls fail.
    public func shutdown() async {
        await self.permits.shutdown()
        for pipeline in self.pipelines { await pipeline.stop() }
    }

    /// Commands in flight and callers waiting for a place right now.
    public var poolUsage: (leased: Int, waiting: Int) { self.permits.usage }

    /// Sends any command as argv and returns its reply; the typed helpers below are preferred.
    @discardableResult
    public func send(_ arguments: [String]) async throws -> RedisValue {
        try await self.send(bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends a command whose arguments may be binary.
    @discardableResult
    public func send(bytes arguments: [[UInt8]]) async throws -> RedisValue {
        let permit = try await self.permits.acquire()
        defer { self.permits.release(permit) }
        return try await self.leastBusyPipeline().send(arguments)
    }

    private func leastBusyPipeline() -> RedisPipeline {
        guard self.pipelines.count > 1 else { return self.pipelines[0] }
        var best = self.pipelines[0]
        var bestLoad = best.load
        for pipeline in self.pipelines.dropFirst() where bestLoad > 0 {
            let load = pipeline.load
            if load < bestLoad {
                best = pipeline
                bestLoad = load
            }
        }
        return best
    }

    /// `PING`; true when the server answered `PONG`.
    public func ping() async throws -> Bool {
        try await self.send(["PING"]) == .status("PONG")
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

    /// `DEL` of a list of keys; how many existed.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        return try await self.integer("DEL", ["DEL"] + keys)
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
        try await self.send(["EVAL", source, String(keys.count)] + keys + arguments)
    }

    /// `EVALSHA sha numkeys keys... args...`.
    @discardableResult
    public func evalSHA(_ sha1: String, keys: [String] = [], arguments: [String] = []) async throws -> RedisValue {
        try await self.send(["EVALSHA", sha1, String(keys.count)] + keys + arguments)
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

    /// One `SCAN cursor MATCH pattern COUNT n` step: the next cursor (0 when done) and the keys.
    public func scan(cursor: Int, matching pattern: String? = nil, count: Int? = nil) async throws -> (cursor: Int, keys: [String]) {
        var arguments = ["SCAN", String(cursor)]
        if let pattern { arguments += ["MATCH", pattern] }
        if let count { arguments += ["COUNT", String(count)] }
        let reply = try await self.send(arguments)
        guard let parts = reply.array, parts.count == 2, let next = parts[0].int, let keys = parts[1].array else {
            throw Self.unexpected("SCAN", reply)
        }
        return (next, keys.compactMap(\.string))
    }

    /// Every key matching `pattern`, walking SCAN to its end (never `KEYS`, which blocks the server).
    public func scanAll(matching pattern: String, count: Int = 500) async throws -> [String] {
        var cursor = 0
        var keys: [String] = []
        repeat {
            let step = try await self.scan(cursor: cursor, matching: pattern, count: count)
            keys += step.keys
            cursor = step.cursor
        } while cursor != 0
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
