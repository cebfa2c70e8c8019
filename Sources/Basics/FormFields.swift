/// `application/x-www-form-urlencoded`, as Africa's Talking and the other form-posting aggregators send it.
public enum FormFields {
    /// The fields of a form body: `+` is a space, `%XX` a byte, a repeated field keeps its first
    /// value, a field without `=` is empty. A bad escape or invalid UTF-8 is malformed. A URL's
    /// query (`plusIsSpace` false) keeps `+` as it is.
    public static func parse(_ bytes: some Collection<UInt8>, plusIsSpace: Bool = true) throws(MalformedCallback) -> [String: String] {
        let parsed = bytes.withContiguousStorageIfAvailable { buffer in Result { () throws(MalformedCallback) in try Self.parse(buffer, plusIsSpace: plusIsSpace) } }
        if let parsed { return try parsed.get() }
        return try Array(bytes).withUnsafeBufferPointer { buffer throws(MalformedCallback) in try Self.parse(buffer, plusIsSpace: plusIsSpace) }
    }

    /// A URL's query, as a router reads it: `%XX` decoded where it is an escape and kept as written
    /// where it is not, `+` kept, invalid UTF-8 repaired; the first of a repeated name. Never
    /// refuses: a query is the caller's words (a user's `50%`), not a body to validate.
    public static func query(_ text: Substring) -> [String: String] {
        // Split on the bytes `&` and `=`, not on characters: `&` followed by a combining mark is
        // one Character, and would hide the separator.
        var fields: [String: String] = [:]
        for pair in Array(text.utf8).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let name = Self.decodeLeniently(pair[..<(equals ?? pair.endIndex)])
            if fields[name] == nil { fields[name] = equals.map { Self.decodeLeniently(pair[($0 + 1)...]) } ?? "" }
        }
        return fields
    }

    private static func decodeLeniently(_ bytes: ArraySlice<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.endIndex, let high = Self.hex(bytes[index + 1]), let low = Self.hex(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool) throws(MalformedCallback) -> [String: String] {
        var fields: [String: String] = [:]
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let name = try Self.unescape(UnsafeBufferPointer(rebasing: bytes[start..<equals]), plusIsSpace: plusIsSpace)
                // Every value is checked, the first of a name kept.
                let value = equals < end ? try Self.unescape(UnsafeBufferPointer(rebasing: bytes[(equals + 1)..<end]), plusIsSpace: plusIsSpace) : ""
                if fields[name] == nil { fields[name] = value }
            }
            start = end + 1
        }
        return fields
    }

    private static func unescape(_ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool) throws(MalformedCallback) -> String {
        // Most fields have nothing to decode: the string is made from the bytes as they are.
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || ($0 == UInt8(ascii: "+") && plusIsSpace) }) {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw MalformedCallback("body is not UTF-8") }
            return text
        }
        // Decoded into scratch space on the stack (a field is at most the body, 64 KiB), then
        // checked as UTF-8 once: no array on the heap, and none at all for a short field.
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count) { (output) throws(MalformedCallback) -> String in
            var (index, count) = (0, 0)
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "+") && plusIsSpace {
                    output[count] = UInt8(ascii: " ")
                } else if byte == UInt8(ascii: "%") {
                    guard index + 2 < bytes.count, let high = Self.hex(bytes[index + 1]), let low = Self.hex(bytes[index + 2]) else {
                        throw MalformedCallback("body is not a urlencoded form")
                    }
                    output[count] = high << 4 | low
                    index += 2
                } else {
                    output[count] = byte
                }
                count += 1
                index += 1
            }
            guard let text = String(validating: UnsafeBufferPointer(rebasing: output[..<count]), as: UTF8.self) else {
                throw MalformedCallback("body is not UTF-8")
            }
            return text
        }
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
