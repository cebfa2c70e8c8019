import Foundation
import Synchronization
import Postgres
import Redis

/// The Redis and Postgres that `make test` started, read from `REDIS_URL` and `DATABASE_URL`.
public enum TestServers {
    /// The shared test Redis. Tests keep to keys under their own ``uniquePrefix(_:)``. A `rediss://`
    /// URL trusts `REDIS_CA_FILE`, as the gateway does (`make test` runs the session suites once
    /// with `REDIS_URL` on a Redis that speaks only TLS).
    public static func redisConfiguration() throws -> RedisConfiguration {
        guard let url = ProcessInfo.processInfo.environment["REDIS_URL"] else {
            throw TestSetupError("REDIS_URL is not set: run the tests with `make test`")
        }
        var configuration = try RedisConfiguration(url: url)
        configuration.tlsCAFile = ProcessInfo.processInfo.environment["REDIS_CA_FILE"]
        return configuration
    }

    /// The TLS-only Redis `make test` started (`REDIS_TLS_URL`, its CA in `REDIS_CA_FILE`), or nil
    /// when the tests run without it: the tests that need it are then skipped, visibly.
    public static let redisTLSConfiguration: RedisConfiguration? = {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["REDIS_TLS_URL"], let caFile = environment["REDIS_CA_FILE"],
            var configuration = try? RedisConfiguration(url: url)
        else { return nil }
        configuration.tlsCAFile = caFile
        return configuration
    }()

    /// The shared test Postgres's own database.
    public static func postgresConfiguration() throws -> PostgresConfiguration {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw TestSetupError("DATABASE_URL is not set: run the tests with `make test`")
        }
        return PostgresConfiguration(connectionString: url)
    }

    /// A key prefix no other test uses.
    public static func uniquePrefix(_ name: String) -> String {
        "test:\(name):\(UUID().uuidString.prefix(8)):"
    }

    /// A new, empty database on the test server, so a test can create tables and migrate freely.
    public static func freshDatabase(_ name: String = "t", suffix: String = "", owner: String? = nil) async throws -> PostgresConfiguration {
        let admin = try postgresConfiguration()
        let database = "\(name)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))\(suffix)"
        // Under a whole suite in parallel on two cores, CREATE DATABASE can queue for a while.
        var creator = admin
        creator.statementTimeout = nil
        let client = PostgresClient(configuration: creator)
        // CREATE DATABASE takes no parameters; the name is built here from a UUID, never from input.
        precondition(owner?.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") } ?? true)
        try await client.query("CREATE DATABASE \(unescaped: database)\(unescaped: owner.map { " OWNER " + $0 } ?? "")")
        await client.shutdown()
        return PostgresConfiguration(connectionString: admin.connectionString.replacingDatabase(with: database))
    }
}

extension TestServers {
    /// A new login in the group role `role` (`ussd_app`, `ussd_report`, `ussd_operator`,
    /// `ussd_approver`, created by migration 0014) and the configuration to connect to `database`
    /// as it. Roles are cluster-wide: each login's name is new (`prefix` and a random suffix).
    /// `database` reached as `user` (a login made by some other means, such as the desk's).
    public static func connection(to database: PostgresConfiguration, as user: String) -> PostgresConfiguration {
        PostgresConfiguration(connectionString: database.connectionString.replacingUser(with: user))
    }

    public static func login(_ prefix: String, in role: String, to database: PostgresConfiguration) async throws -> PostgresConfiguration {
        precondition(["ussd_app", "ussd_report", "ussd_operator", "ussd_approver"].contains(role))
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        precondition(name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        let client = PostgresClient(configuration: try postgresConfiguration())
        // The name is built here from letters, digits and a UUID, never from input.
        try await client.query("CREATE ROLE \(unescaped: name) LOGIN IN ROLE \(unescaped: role)")
        await client.shutdown()
        return PostgresConfiguration(connectionString: database.connectionString.replacingUser(with: name))
    }
}

extension String {
    /// The same `postgres://` URL with another user.
    fileprivate func replacingUser(with user: String) -> String {
        guard var components = URLComponents(string: self) else { return self }
        components.user = user
        components.password = nil
        return components.string ?? self
    }

    /// The same `postgres://` URL naming another database.
    fileprivate func replacingDatabase(with database: String) -> String {
        guard var components = URLComponents(string: self) else { return self }
        components.path = "/" + database
        return components.string ?? self
    }
}

/// The tests cannot run: the environment lacks what `make test` provides.
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A Redis or Postgres of a test's own, on a free port, which the test may stop and start again
/// (through `scripts/services.sh`, the script `make test` uses).
public final class PrivateServer: Sendable {
    public enum Kind: String, Sendable { case redis, postgres }

    public let kind: Kind
    public let port: Int
    public let directory: String

    private init(kind: Kind, port: Int, directory: String) {
        self.kind = kind
        self.port = port
        self.directory = directory
    }

    /// Starts a new server of this kind on a free port (the script picks it, and picks again if
    /// another process binds it first).
    public static func start(_ kind: Kind) async throws -> PrivateServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ussd-test-\(kind.rawValue)-\(UUID().uuidString.prefix(8))").path
        try await script(["start-\(kind.rawValue)", directory, "auto"])
        let written = try String(contentsOfFile: directory + "/port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = Int(written) else { throw TestSetupError("services.sh wrote no port for \(kind.rawValue) in \(directory)") }
        return PrivateServer(kind: kind, port: port, directory: directory)
    }

    /// Runs `body` with a new server of this kind, and removes the server afterwards, also when
    /// `body` throws (a failing test leaves no server behind).
    public static func with<Result>(_ kind: Kind, _ body: (PrivateServer) async throws -> Result) async throws -> Result {
        let server = try await Self.start(kind)
        do {
            let result = try await body(server)
            await server.remove()
            return result
        } catch {
            await server.remove()
            throw error
        }
    }

    public var redisConfiguration: RedisConfiguration { RedisConfiguration(host: "127.0.0.1", port: self.port) }
    public var postgresConfiguration: PostgresConfiguration {
        PostgresConfiguration(connectionString: "postgres://ussd@127.0.0.1:\(self.port)/ussd")
    }

    /// Starts the server again on the same port and files.
    public func start() async throws {
        try await Self.script(["start-\(self.kind.rawValue)", self.directory, String(self.port)])
    }

    /// Stops the server; its clients' connections break.
    public func stop() async throws {
        try await Self.script(["stop-\(self.kind.rawValue)", self.directory])
    }

    /// Stops the server and removes its files; call at the end of the test.
    public func remove() async {
        _ = try? await Self.script(["stop-\(self.kind.rawValue)", self.directory])
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// Path of `scripts/services.sh`, found from this file's place in the repository.
    public static var scriptPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/services.sh").path
    }

    /// A TCP port on 127.0.0.1 nobody uses right now (`services.sh free-port`).
    public static func freePort() async throws -> Int {
        guard let port = Int(try await Self.script(["free-port"]).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestSetupError("services.sh free-port printed no port")
        }
        return port
    }

    /// Runs the script and returns its standard output.
    @discardableResult
    static func script(_ arguments: [String]) async throws -> String {
        try await ChildProcess.run("/bin/bash", [scriptPath] + arguments)
    }
}

/// The real wall clock, which a test moves ahead instead of sleeping: time passed in.
public final class AdvancingClock: Sendable {
    private let offset = Mutex<TimeInterval>(0)

    public init() {}

    public var now: Date { Date().addingTimeInterval(self.offset.withLock { $0 }) }

    /// The clock as the gateway's configuration takes it.
    public var read: @Sendable () -> Date { { self.now } }

    /// As if `duration` had passed.
    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.offset.withLock { $0 += Double(seconds) + Double(attoseconds) / 1e18 }
    }

    /// To the start of the next minute when fewer than `margin` seconds are left in this one: a
    /// count per clock minute then starts well inside one.
    public func leaveEndOfMinute(margin: Int = 20) {
        let second = Int(self.now.timeIntervalSince1970) % 60
        if second > 60 - margin { self.advance(by: .seconds(61 - second)) }
    }
}

/// A wall clock a test sets: time passed in, never slept for.
public final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Date

    public init(_ start: Date = Date()) { self.value = start }

    public var now: Date {
        get { self.lock.withLock { self.value } }
        set { self.lock.withLock { self.value = newValue } }
    }
}
