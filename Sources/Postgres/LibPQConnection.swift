import CLibPQ
import Foundation
import ConnectionPool

/// One libpq connection. Owns the `PGconn*`; every result it reads is wrapped in a
/// ``PostgresResult`` that clears it. Used on pool threads only, one call at a time.
final class LibPQConnection: PoolableConnection {
    private let configuration: PostgresConfiguration
    private var connection: OpaquePointer?
    /// Statements prepared on this connection, by SQL text and parameter types.
    private var prepared: [PreparedKey: String] = [:]
    private var nextStatement = 0
    /// Set by the connection's notice receiver when the server stopped waiting for a synchronous
    /// standby during a commit (see ``PostgresError/Code/unconfirmedCommit``).
    private let syncReplicationCancelled = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    /// Past this many distinct statements the cache starts over (`DEALLOCATE ALL`).
    static let preparedLimit = 256

    private struct PreparedKey: Hashable {
        let sql: String
        let types: [UInt32]
    }

    init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.syncReplicationCancelled.initialize(to: 0)
    }

    deinit {
        self.close()
        self.syncReplicationCancelled.deallocate()
    }

    func close() {
        if let connection { PQfinish(connection) }
        self.connection = nil
        self.prepared = [:]
    }

    /// True inside a transaction block (or a failed one).
    var inTransaction: Bool {
        guard let connection else { return false }
        let status = PQtransactionStatus(connection)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    /// Runs one parameterised statement with the extended protocol, prepared once per connection.
    ///
    /// The server parses and plans a statement the first time this connection sees its SQL and
    /// then only binds and executes it, as postgres-nio and JDBC do. `reconnect` allows replacing
    /// a connection that broke while idle; it is false inside a transaction, where a new
    /// connection would silently lose the transaction's earlier work.
    func execute(_ query: PostgresQuery, reconnect: Bool) throws(PostgresError) -> PostgresRows {
        let connection = try self.connected(reconnect: reconnect)
        self.syncReplicationCancelled.pointee = 0
        let key = PreparedKey(sql: query.sql, types: query.binds.map(\.typeOID))
        let name = try self.statementName(for: key, connection)
        do {
            return try self.check(self.executePrepared(name, query.binds, connection), connection)
        } catch let error where error.sqlState == "0A000" && !self.inTransaction {
            // "cached plan must not change result type": a migration altered a table under a
            // cached statement. Prepare it afresh, once; inside a transaction the caller retries.
            self.prepared[key] = nil
            let fresh = try self.statementName(for: key, connection)
            return try self.check(self.executePrepared(fresh, query.binds, connection), connection)
        }
    }

    private func statementName(for key: PreparedKey, _ connection: OpaquePointer) throws(PostgresError) -> String {
        if let name = self.prepared[key] { return name }
        if self.prepared.count >= Self.preparedLimit, !self.inTransaction {
            _ = try self.check(PQexec(connection, "DEALLOCATE ALL"), connection)
            self.prepared = [:]
        }
        self.nextStatement += 1
        let name = "s\(self.nextStatement)"
        let result = key.types.withUnsafeBufferPointer { types in
            PQprepare(connection, name, key.sql, Int32(types.count), types.baseAddress)
        }
        _ = try self.check(result, connection)
        self.prepared[key] = name
        return name
    }

    private func executePrepared(_ name: String, _ binds: [PostgresBind], _ connection: OpaquePointer) -> OpaquePointer? {
        let count = binds.count
        return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: max(count, 1)) { values in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(count, 1)) { lengths in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(count, 1)) { formats in
                    let total = binds.reduce(0) { $0 + ($1.bytes?.count ?? 0) + 1 }
                    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: max(total, 1)) { storage in
                        var offset = 0
                        for (index, bind) in binds.enumerated() {
                            formats[index] = bind.binary ? 1 : 0
                            if let bytes = bind.bytes {
                                let start = storage.baseAddress! + offset
                                bytes.withUnsafeBytes { raw in
                                    if !raw.isEmpty { UnsafeMutableRawPointer(start).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
                                }
                                start[bytes.count] = 0
                                values[index] = UnsafePointer(start)
                                lengths[index] = Int32(bytes.count)
                                offset += bytes.count + 1
                            } else {
                                values[index] = nil
                                lengths[index] = 0
                            }
                        }
                        return PQexecPrepared(connection, name, Int32(count), values.baseAddress, lengths.baseAddress, formats.baseAddress, 0)
                    }
                }
            }
        }
    }

    /// How this connection reaches the server: the host libpq connected to, its `sslmode` (with
    /// libpq's defaults filled in) and whether TLS is in use (`PQsslInUse`).
    func transport(reconnect: Bool) throws(PostgresError) -> PostgresTransport {
        let connection = try self.connected(reconnect: reconnect)
        var options: [String: String] = [:]
        if let info = PQconninfo(connection) {
            options = LibPQOptions.values(info)
            PQconninfoFree(info)
        }
        let host = PQhost(connection).map { String(cString: $0) } ?? ""
        return PostgresTransport(hosts: [host], sslMode: options["sslmode"] ?? "prefer", encrypted: PQsslInUse(connection) == 1)
    }

    /// Runs trusted SQL text with the simple protocol, which allows several statements (migrations).
    func executeScript(_ sql: String, reconnect: Bool) throws(PostgresError) {
        let connection = try self.connected(reconnect: reconnect)
        self.syncReplicationCancelled.pointee = 0
        _ = try self.check(PQexec(connection, sql), connection)
    }

    private func check(_ result: OpaquePointer?, _ connection: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else {
            let message = String(cString: PQerrorMessage(connection))
            if PQstatus(connection) != CONNECTION_OK { self.close() }
            throw PostgresError(code: .connection, detail: message)
        }
        let owned = PostgresResult(result)
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            // Committed on this server, but its wait for a synchronous standby was cancelled (a
            // cancel request): no standby has confirmed it, so a failover could lose it.
            if self.syncReplicationCancelled.pointee != 0 {
                self.syncReplicationCancelled.pointee = 0
                throw PostgresError(code: .unconfirmedCommit, detail: "the server stopped waiting for a synchronous standby to confirm the commit")
            }
            return PostgresRows(result: owned)
        default:
            let state = PQresultErrorField(result, CLIBPQ_DIAG_SQLSTATE).map { String(cString: $0) }
            let primary = PQresultErrorField(result, CLIBPQ_DIAG_MESSAGE_PRIMARY).map { String(cString: $0) }
            let detail = PQresultErrorField(result, CLIBPQ_DIAG_MESSAGE_DETAIL).map { String(cString: $0) }
            let constraint = PQresultErrorField(result, CLIBPQ_DIAG_CONSTRAINT_NAME).map { String(cString: $0) }
            if PQstatus(connection) != CONNECTION_OK {
                self.close()
                throw PostgresError(code: .connection, sqlState: state, detail: primary ?? String(cString: PQerrorMessage(connection)))
            }
            guard let state else {
                throw PostgresError(code: .connection, detail: primary ?? String(cString: PQerrorMessage(connection)))
            }
            throw PostgresError(
                code: .server, sqlState: state, constraint: constraint,
                detail: [primary, detail].compactMap { $0 }.joined(separator: " ")
            )
        }
    }

    private func connected(reconnect: Bool) throws(PostgresError) -> OpaquePointer {
        if let connection {
            if !reconnect || clibpq_idle_connection_broken(connection) == 0 {
                return connection
            }
            self.close()
        }
        guard reconnect else {
            throw PostgresError(code: .connection, detail: "connection lost inside a transaction")
        }
        let keywords = self.configuration.keywords
        let connection = Self.withCStrings(keywords.map(\.0)) { names in
            Self.withCStrings(keywords.map(\.1)) { values in
                PQconnectdbParams(names, values, 1)
            }
        }
        guard let connection else {
            throw PostgresError(code: .connection, detail: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(code: .connection, detail: message)
        }
        // libpq prints server notices to stderr by default, bypassing our logging; ours only
        // watches for the one that makes a commit's success a lie.
        clibpq_watch_notices(connection, self.syncReplicationCancelled)
        self.connection = connection
        return connection
    }

    /// A NULL-terminated array of C strings valid inside `body`.
    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let duplicated = strings.map { strdup($0) }
        defer { duplicated.forEach { free($0) } }
        let pointers = duplicated.map { UnsafePointer<CChar>($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
