import Foundation

/// A Swift value that can be bound to a `$n` parameter.
public protocol PostgresEncodable: Sendable {
    /// The parameter's type OID; 0 lets the server infer it from the statement.
    static var postgresTypeOID: UInt32 { get }
    /// True when the bytes are the binary wire format, false for text.
    static var postgresBinary: Bool { get }
    /// The parameter's bytes, or nil for SQL NULL.
    var postgresBytes: [UInt8]? { get }
}

extension PostgresEncodable {
    public static var postgresBinary: Bool { false }
}

extension String: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 0 }
    public var postgresBytes: [UInt8]? { Array(self.utf8) }
}

extension Substring: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 0 }
    public var postgresBytes: [UInt8]? { Array(self.utf8) }
}

extension Int: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 20 }
    public var postgresBytes: [UInt8]? { Array(String(self).utf8) }
}

extension Int64: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 20 }
    public var postgresBytes: [UInt8]? { Array(String(self).utf8) }
}

extension Int32: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 23 }
    public var postgresBytes: [UInt8]? { Array(String(self).utf8) }
}

extension Bool: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 16 }
    public var postgresBytes: [UInt8]? { Array((self ? "true" : "false").utf8) }
}

extension Double: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 701 }
    public var postgresBytes: [UInt8]? { Array(String(self).utf8) }
}

extension Date: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 1184 }
    /// `timestamptz` text in UTC with microseconds, which the server parses whatever its DateStyle.
    public var postgresBytes: [UInt8]? { Array(PostgresDateFormat.format(self).utf8) }
}

extension Data: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { 17 }
    public static var postgresBinary: Bool { true }
    public var postgresBytes: [UInt8]? { Array(self) }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresTypeOID: UInt32 { Wrapped.postgresTypeOID }
    public static var postgresBinary: Bool { Wrapped.postgresBinary }
    public var postgresBytes: [UInt8]? { self.flatMap { $0.postgresBytes } }
}

/// One bound parameter as libpq takes it.
struct PostgresBind: Sendable {
    var typeOID: UInt32
    var binary: Bool
    var bytes: [UInt8]?
}
