import CLibPQ

/// One row of a result, decoded column by column into Swift types.
public struct PostgresRow: Sendable {
    let result: PostgresResult
    let index: Int

    /// Decodes the column at `column` (0-based).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column: Int) throws(PostgresError) -> T {
        try self.result.decode(type, row: self.index, column: column)
    }

    /// Decodes the column called `name`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws(PostgresError) -> T {
        guard let column = self.result.column(named: name) else {
            throw PostgresError(code: .usage, detail: "no column named \(name)")
        }
        return try self.result.decode(type, row: self.index, column: column)
    }

    /// Decodes the leading columns into a tuple: `let (id, name) = try row.decode((Int64, String).self)`.
    public func decode<each T: PostgresDecodable>(_ types: (repeat each T).Type) throws(PostgresError) -> (repeat each T) {
        var column = 0
        func next<Value: PostgresDecodable>(_ type: Value.Type) throws(PostgresError) -> Value {
            defer { column += 1 }
            return try self.result.decode(type, row: self.index, column: column)
        }
        return (repeat try next((each T).self))
    }
}
