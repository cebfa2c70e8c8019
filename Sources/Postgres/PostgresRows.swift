import CLibPQ

/// Owns one `PGresult*` and clears it when the last reference goes.
///
/// `@unchecked Sendable`: libpq documents a PGresult as read-only once returned, safe to read from
/// any thread, and this class never mutates it.
final class PostgresResult: @unchecked Sendable {
    let pointer: OpaquePointer
    let rowCount: Int
    let columnCount: Int

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        self.rowCount = Int(PQntuples(pointer))
        self.columnCount = Int(PQnfields(pointer))
    }

    deinit { PQclear(self.pointer) }

    func columnName(_ column: Int) -> String {
        String(cString: PQfname(self.pointer, Int32(column)))
    }

    func column(named name: String) -> Int? {
        let index = PQfnumber(self.pointer, "\"\(name)\"")
        return index >= 0 ? Int(index) : nil
    }

    func decode<T: PostgresDecodable>(_ type: T.Type, row: Int, column: Int) throws(PostgresError) -> T {
        guard column >= 0, column < self.columnCount else {
            throw PostgresError(code: .usage, detail: "column \(column) of \(self.columnCount)")
        }
        if PQgetisnull(self.pointer, Int32(row), Int32(column)) != 0 {
            return try T.postgresNull()
        }
        let length = Int(PQgetlength(self.pointer, Int32(row), Int32(column)))
        let value = PQgetvalue(self.pointer, Int32(row), Int32(column))!
        return try value.withMemoryRebound(to: UInt8.self, capacity: length) { bytes throws(PostgresError) in
            try T(postgresText: UnsafeBufferPointer(start: bytes, count: length))
        }
    }
}

/// The rows a statement returned, and how many rows it affected.
public struct PostgresRows: Sendable, RandomAccessCollection {
    let result: PostgresResult
    /// Rows inserted, updated or deleted, from the command tag (0 for a plain SELECT's tag-less count).
    public let affectedRows: Int

    init(result: PostgresResult) {
        self.result = result
        self.affectedRows = Int(String(cString: PQcmdTuples(result.pointer))) ?? 0
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { self.result.rowCount }
    public subscript(position: Int) -> PostgresRow { PostgresRow(result: self.result, index: position) }

    /// The column names, in order.
    public var columns: [String] { (0..<self.result.columnCount).map(self.result.columnName) }

    /// The single row a statement returned, nil when it returned none; more than one is a usage error.
    public func single() throws(PostgresError) -> PostgresRow? {
        switch self.count {
        case 0: return nil
        case 1: return self[0]
        default: throw PostgresError(code: .usage, detail: "expected at most one row, got \(self.count)")
        }
    }
}
