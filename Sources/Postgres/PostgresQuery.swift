/// A SQL statement whose interpolated values become bound parameters, never spliced text.
///
/// ```swift
/// let rows = try await postgres.query("SELECT name FROM customers WHERE msisdn = \(msisdn)")
/// ```
/// sends `SELECT name FROM customers WHERE msisdn = $1` with `msisdn` bound as `$1`.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    public private(set) var sql: String
    var binds: [PostgresBind]

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    /// The number of bound parameters.
    public var parameterCount: Int { self.binds.count }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            self.sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            self.binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            self.sql += literal
        }

        /// Binds `value` as the next `$n` parameter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            self.bind(value)
        }

        /// Binds an optional as the next `$n` parameter: SQL NULL when nil. (Spelled out so that an
        /// optional reads as intended, not as Swift's "debug description" of one.)
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            self.bind(value)
        }

        private mutating func bind<Value: PostgresEncodable>(_ value: Value) {
            self.binds.append(PostgresBind(typeOID: Value.postgresTypeOID, binary: Value.postgresBinary, bytes: value.postgresBytes))
            self.sql += "$\(self.binds.count)"
        }

        /// Splices trusted SQL text (an identifier the code itself chose, never user input).
        public mutating func appendInterpolation(unescaped sql: String) {
            self.sql += sql
        }
    }
}
