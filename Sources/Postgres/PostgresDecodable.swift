import Basics
import Foundation

/// A Swift type a column can be decoded into from libpq's text format.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value from its text representation.
    init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError)
    /// What a NULL decodes to; everything but `Optional` refuses it.
    static func postgresNull() throws(PostgresError) -> Self
}

extension PostgresDecodable {
    public static func postgresNull() throws(PostgresError) -> Self {
        throw PostgresError(code: .decoding, detail: "NULL in a column decoded as non-optional \(Self.self)")
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        self = .some(try Wrapped(postgresText: text))
    }

    public static func postgresNull() -> Self { nil }
}

extension String: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) {
        self = String(decoding: text, as: UTF8.self)
    }
}

extension Int64: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        var index = 0
        var negative = false
        if let first = text.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            index = 1
        }
        guard index < text.count else { throw PostgresError(code: .decoding, detail: "empty integer") }
        var value: Int64 = 0
        while index < text.count {
            let digit = text[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw PostgresError(code: .decoding, detail: "not an integer column") }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? times.subtractingReportingOverflow(Int64(digit)) : times.addingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { throw PostgresError(code: .decoding, detail: "integer out of range") }
            value = next
            index += 1
        }
        self = value
    }
}

extension Int: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        self = Int(try Int64(postgresText: text))
    }
}

extension Int32: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        guard let value = Int32(exactly: try Int64(postgresText: text)) else {
            throw PostgresError(code: .decoding, detail: "integer out of range for Int32")
        }
        self = value
    }
}

extension Bool: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        switch text.first {
        case UInt8(ascii: "t"): self = true
        case UInt8(ascii: "f"): self = false
        default: throw PostgresError(code: .decoding, detail: "not a boolean column")
        }
    }
}

extension Double: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        guard let value = Double(String(decoding: text, as: UTF8.self)) else {
            throw PostgresError(code: .decoding, detail: "not a floating-point column")
        }
        self = value
    }
}

extension Date: PostgresDecodable {
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        guard let date = PostgresDateFormat.parse(text) else {
            throw PostgresError(code: .decoding, detail: "not a date or timestamp column")
        }
        self = date
    }
}

extension Data: PostgresDecodable {
    /// Decodes `bytea` in the hex output format (`\x...`), the server's default since 9.0.
    public init(postgresText text: UnsafeBufferPointer<UInt8>) throws(PostgresError) {
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x"), text.count % 2 == 0 else {
            throw PostgresError(code: .decoding, detail: "not a bytea column in hex format")
        }
        guard let bytes = Hex.decode(text[2...]) else { throw PostgresError(code: .decoding, detail: "bad hex in a bytea column") }
        self = Data(bytes)
    }
}

/// The ISO text form of `date`, `timestamp` and `timestamptz` the connection asks for (DateStyle ISO, UTC).
enum PostgresDateFormat {
    /// `2026-11-21 20:19:50.123456+00`.
    static func format(_ date: Date) -> String {
        let totalMicros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        var seconds = totalMicros / 1_000_000
        var micros = totalMicros % 1_000_000
        if micros < 0 { micros += 1_000_000; seconds -= 1 }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 { secondOfDay += 86_400; days -= 1 }
        let (year, month, day) = civil(fromDays: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(micros, 6))+00"
    }

    /// Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM]]`; nil for anything else (`infinity`, BC dates).
    static func parse(_ text: UnsafeBufferPointer<UInt8>) -> Date? {
        var index = 0
        func number(_ digits: Int) -> Int64? {
            guard index + digits <= text.count else { return nil }
            var value: Int64 = 0
            for _ in 0..<digits {
                let digit = text[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
                index += 1
            }
            return value
        }
        func expect(_ c: Character) -> Bool {
            guard index < text.count, text[index] == c.asciiValue! else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2) else { return nil }
        var seconds = days(fromCivil: year, month, day) * 86_400
        var micros: Int64 = 0
        if index < text.count, text[index] == UInt8(ascii: " ") || text[index] == UInt8(ascii: "T") {
            index += 1
            guard let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2) else { return nil }
            seconds += hour * 3600 + minute * 60 + second
            if index < text.count, text[index] == UInt8(ascii: ".") {
                index += 1
                var scale: Int64 = 100_000
                while index < text.count, case let digit = text[index] &- UInt8(ascii: "0"), digit < 10 {
                    micros += Int64(digit) * scale
                    scale /= 10
                    index += 1
                }
            }
            if index < text.count, text[index] == UInt8(ascii: "+") || text[index] == UInt8(ascii: "-") {
                let sign: Int64 = text[index] == UInt8(ascii: "+") ? 1 : -1
                index += 1
                guard let offsetHours = number(2) else { return nil }
                var offset = offsetHours * 3600
                if expect(":") {
                    guard let offsetMinutes = number(2) else { return nil }
                    offset += offsetMinutes * 60
                    if expect(":") {
                        guard let offsetSeconds = number(2) else { return nil }
                        offset += offsetSeconds
                    }
                }
                seconds -= sign * offset
            }
        }
        guard index == text.count else { return nil }
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    /// Howard Hinnant's days-from-civil: days since 1970-01-01 of a proleptic Gregorian date.
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of ``days(fromCivil:_:_:)``.
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
