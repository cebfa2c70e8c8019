import CLibPQ
import ConnectionPool
import Foundation
import Logging
import ServiceLifecycle

/// Listens on one Postgres notification channel (`LISTEN`) over a connection of its own, on a
/// thread of its own (libpq blocks), and hands each notice's payload to `notice`.
///
/// `listening(true)` is called once `LISTEN` holds, `listening(false)` as soon as the connection
/// is lost (notices sent meanwhile are lost with it) and at shutdown; it then reconnects, from
/// one second up to ten between attempts. Whoever keeps state by its notices drops that state
/// on `false` and starts again on `true`.
public final class PostgresListener: Service, Sendable {
    let configuration: PostgresConfiguration
    let channel: String
    let notice: @Sendable (String) -> Void
    let listening: @Sendable (Bool) -> Void
    let logger: Logger
    private let thread = OnDemandThreadPool(numberOfThreads: 1)

    /// `channel` must be a plain identifier (it is written into the `LISTEN` statement).
    public init(
        configuration: PostgresConfiguration, channel: String, logger: Logger, notice: @escaping @Sendable (String) -> Void,
        listening: @escaping @Sendable (Bool) -> Void
    ) {
        precondition(channel.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }, "a notification channel is a plain identifier")
        self.configuration = configuration
        self.channel = channel
        self.notice = notice
        self.listening = listening
        self.logger = logger
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
                    if connection.isOpen {
                        connection.close()
                        self.listening(false)
                    }
                    self.logger.warning("postgres notifications lost, reconnecting", metadata: ["channel": .string(self.channel), "error": .string("\(error)")])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(10))
                }
            }
        }
        connection.close()
        self.listening(false)
        await self.thread.shutdown()
    }

    /// Connects and listens if needed, then waits up to 250 ms for notices and hands them over.
    private func waitOnce(_ connection: Connection) throws(PostgresError) {
        if !connection.isOpen {
            try connection.open(self.configuration, listen: self.channel)
            self.listening(true)
        }
        for payload in try connection.wait(milliseconds: 250) { self.notice(payload) }
    }

    /// The listening connection, used on the listener's one thread only.
    private final class Connection: @unchecked Sendable {
        private var connection: OpaquePointer?

        var isOpen: Bool { self.connection != nil }

        func open(_ configuration: PostgresConfiguration, listen channel: String) throws(PostgresError) {
            let keywords = configuration.keywords
            let connection = LibPQConnection.withCStrings(keywords.map(\.0)) { names in
                LibPQConnection.withCStrings(keywords.map(\.1)) { values in PQconnectdbParams(names, values, 1) }
            }
            guard let connection else { throw PostgresError(code: .connection, detail: "libpq could not allocate a connection") }
            guard PQstatus(connection) == CONNECTION_OK else {
                let message = String(cString: PQerrorMessage(connection))
                PQfinish(connection)
                throw PostgresError(code: .connection, detail: message)
            }
            let result = PQexec(connection, "LISTEN \(channel)")
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COMMAND_OK else {
                let message = String(cString: PQerrorMessage(connection))
                PQfinish(connection)
                throw PostgresError(code: .server, detail: message)
            }
            self.connection = connection
        }

        /// The payloads of the notices that came within `milliseconds` (none when none did).
        func wait(milliseconds: Int32) throws(PostgresError) -> [String] {
            guard let connection else { return [] }
            let ready = clibpq_wait_readable(connection, milliseconds)
            if ready < 0 || (ready > 0 && PQconsumeInput(connection) == 0) || PQstatus(connection) != CONNECTION_OK {
                throw PostgresError(code: .connection, detail: String(cString: PQerrorMessage(connection)))
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

        deinit { self.close() }
    }
}
