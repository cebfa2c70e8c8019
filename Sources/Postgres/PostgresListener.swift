import CLibPQ
import ConnectionPool
import Foundation
import Logging
import ServiceLifecycle

/// Listens on one Postgres notification channel (`LISTEN`) over a connection of its own, on a
/// thread of its own (libpq blocks), and hands each notice's payload to `notice`.
///
/// `listening(true)` is called once `LISTEN` holds and `requires` (a statement answering one
/// boolean: that whatever sends the notices is in place) answered true; `listening(false)` as
/// soon as the connection is lost or stops answering (notices sent meanwhile are lost with it)
/// and at shutdown. A connection that dies without a word (a host gone, a network split) is found
/// out by a heartbeat every second (`requires` again, or `SELECT 1`): unanswered for five seconds
/// (a statement's own default limit), or `requires` answering false, counts as lost. It then
/// reconnects, from one second up to ten between attempts. Whoever keeps state by its notices
/// drops that state on `false` and starts again on `true`.
public final class PostgresListener: Service, Sendable {
    let configuration: PostgresConfiguration
    let channel: String
    let requires: String?
    let notice: @Sendable (String) -> Void
    let listening: @Sendable (Bool) -> Void
    let logger: Logger
    private let thread = OnDemandThreadPool(numberOfThreads: 1)

    /// `channel` is a lower-case identifier (it is written into the `LISTEN` statement as it is).
    public init(
        configuration: PostgresConfiguration, channel: String, requires: String? = nil, logger: Logger,
        notice: @escaping @Sendable (String) -> Void, listening: @escaping @Sendable (Bool) -> Void
    ) {
        precondition(
            channel.first.map { $0 == "_" || ("a"..."z").contains($0) } == true
                && channel.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) },
            "a notification channel is a lower-case identifier"
        )
        var configuration = configuration
        // Told apart from the pool's connections in `pg_stat_activity`.
        configuration.applicationName += " listener"
        self.configuration = configuration
        self.channel = channel
        self.requires = requires
        self.notice = notice
        self.listening = listening
        self.logger = logger
    }

    /// Why the listening connection was given up, in words safe for the log.
    struct Lost: Error, CustomStringConvertible {
        let description: String
    }

    /// Listens until graceful shutdown or cancellation.
    public func run() async throws {
        let connection = Connection()
        await cancelWhenGracefulShutdown {
            var delay = Duration.seconds(1)
            while !Task.isCancelled {
                do {
                    // Each wait on the thread returns within a quarter of a second, to look at
                    // the cancellation.
                    try await self.thread.run { try self.waitOnce(connection) }
                    delay = .seconds(1)
                } catch {
                    if Task.isCancelled { break }
                    try? await self.thread.run { connection.close() }
                    self.listening(false)
                    self.logger.warning("postgres notices not heard, reconnecting", metadata: ["channel": .string(self.channel), "reason": .string("\(error)")])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(10))
                }
            }
        }
        // Closed on the listener's thread even when this task was cancelled (a cancelled task's
        // call to the thread would not run): a new task does not inherit the cancellation.
        await Task { try? await self.thread.run { connection.close() } }.value
        self.listening(false)
        await self.thread.shutdown()
    }

    /// Connects and listens if needed, then waits up to 250 ms for notices and hands them over.
    private func waitOnce(_ connection: Connection) throws {
        if !connection.isOpen {
            try connection.open(self.configuration, listen: self.channel, requires: self.requires)
            self.listening(true)
        }
        for payload in try connection.wait(milliseconds: 250, heartbeat: self.requires) { self.notice(payload) }
    }

    /// The listening connection, used on the listener's one thread only.
    private final class Connection: @unchecked Sendable {
        private var connection: OpaquePointer?
        /// Server notices go nowhere (libpq's default prints them to stderr).
        private let notices = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        /// When the heartbeat in flight was sent; nil when none is.
        private var heartbeatSent: ContinuousClock.Instant?
        private var lastHeartbeat = ContinuousClock.now

        static let heartbeatEvery = Duration.seconds(1)
        static let heartbeatWithin = Duration.seconds(5)

        init() { self.notices.initialize(to: 0) }

        var isOpen: Bool { self.connection != nil }

        func open(_ configuration: PostgresConfiguration, listen channel: String, requires: String?) throws {
            let keywords = configuration.keywords
            let connection = LibPQConnection.withCStrings(keywords.map(\.0)) { names in
                LibPQConnection.withCStrings(keywords.map(\.1)) { values in PQconnectdbParams(names, values, 1) }
            }
            guard let connection else { throw Lost(description: "libpq could not allocate a connection") }
            guard PQstatus(connection) == CONNECTION_OK else {
                PQfinish(connection)
                throw Lost(description: "could not connect")
            }
            clibpq_watch_notices(connection, self.notices)
            guard Self.command(connection, "LISTEN \(channel)") else {
                PQfinish(connection)
                throw Lost(description: "LISTEN was refused")
            }
            if let requires {
                let result = PQexec(connection, requires)
                defer { PQclear(result) }
                let holds = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1 && String(cString: PQgetvalue(result, 0, 0)) == "t"
                guard holds else {
                    PQfinish(connection)
                    throw Lost(description: "what sends the notices is not in place")
                }
            }
            self.connection = connection
            self.heartbeatSent = nil
            self.lastHeartbeat = .now
        }

        private static func command(_ connection: OpaquePointer, _ sql: String) -> Bool {
            let result = PQexec(connection, sql)
            defer { PQclear(result) }
            return PQresultStatus(result) == PGRES_COMMAND_OK
        }

        /// The payloads of the notices that came within `milliseconds` (none when none did). The
        /// heartbeat is `requires` when given (so what sends the notices is checked every second
        /// too), `SELECT 1` otherwise.
        func wait(milliseconds: Int32, heartbeat requires: String?) throws -> [String] {
            guard let connection else { return [] }
            if self.heartbeatSent == nil && ContinuousClock.now - self.lastHeartbeat >= Self.heartbeatEvery {
                guard PQsendQuery(connection, requires ?? "SELECT 1") == 1 else { throw Lost(description: "the connection broke") }
                self.heartbeatSent = .now
            }
            let ready = clibpq_wait_readable(connection, milliseconds)
            if ready < 0 || (ready > 0 && PQconsumeInput(connection) == 0) || PQstatus(connection) != CONNECTION_OK {
                throw Lost(description: "the connection broke")
            }
            // The heartbeat's answer, once whole.
            while self.heartbeatSent != nil && PQisBusy(connection) == 0 {
                guard let result = PQgetResult(connection) else {
                    (self.heartbeatSent, self.lastHeartbeat) = (nil, .now)
                    break
                }
                let holds = PQresultStatus(result) == PGRES_TUPLES_OK && (requires == nil || (PQntuples(result) == 1 && String(cString: PQgetvalue(result, 0, 0)) == "t"))
                PQclear(result)
                guard holds else { throw Lost(description: "the heartbeat failed, or what sends the notices is no longer in place") }
            }
            // Judged after reading, so an answer already in the socket is never taken for silence.
            if let sent = self.heartbeatSent, ContinuousClock.now - sent >= Self.heartbeatWithin {
                throw Lost(description: "the server stopped answering")
            }
            var payloads: [String] = []
            while let notice = PQnotifies(connection) {
                payloads.append(String(cString: notice.pointee.extra))
                PQfreemem(notice)
            }
            return payloads
        }

        func close() {
            if let connection { PQfinish(connection) }
            self.connection = nil
        }

        deinit {
            self.close()
            self.notices.deallocate()
        }
    }
}
