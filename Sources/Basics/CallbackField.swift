// Every aggregator's and provider's callbacks, checked at the edge: every field the gateway reads is
// bounded in length, limited to the characters it can hold, and free of control characters, so no
// value a caller made up reaches Redis, Postgres, a log or a metric label. Foundation-free and
// pure, so the decoders can be fuzzed on their own (`make fuzz`).
//
// Phone numbers are checked for shape only here (an optional `+`, then digits); which numbers the
// deployment serves is the caller's rule (`MSISDN(parsing:)`).

/// The checks every callback field goes through, whichever aggregator or provider sent it.
public enum CallbackField {
    /// An id that lands in Redis keys, database keys and idempotency keys: `[A-Za-z0-9_-]{1,max}`.
    /// No `:` can appear, so no caller can build a key of another namespace (`sms:`, `deposit:`).
    public static func isIdentifier(_ value: String, maxLength: Int = 64) -> Bool {
        (1...maxLength).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
    }

    /// A phone number's shape: an optional `+` (which an unencoded form turns into a space), then 7
    /// to 15 digits, at most 20 characters with the spaces around it.
    public static func phone(_ value: String?) -> String? {
        guard let value, value.utf8.count <= 20 else { return nil }
        var digits = Substring(value).drop { $0 == " " }
        while digits.last == " " { digits.removeLast() }
        if digits.first == "+" { digits.removeFirst() }
        guard (7...15).contains(digits.utf8.count), digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return "+" + digits
    }

    /// Text with no control character (C0, DEL, C1) except those in `allowing`, of at most
    /// `maxBytes` UTF-8 bytes.
    public static func isCleanText(_ value: String, maxBytes: Int, allowing: Set<Unicode.Scalar> = []) -> Bool {
        value.utf8.count <= maxBytes
            && value.unicodeScalars.allSatisfy { scalar in
                allowing.contains(scalar) || !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value))
            }
    }

    /// Printable ASCII without spaces, 1 to `maxLength` characters (service codes, network codes).
    public static func isPrintableToken(_ value: String, maxLength: Int) -> Bool {
        (1...maxLength).contains(value.utf8.count) && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Letters only, 1 to `maxLength` of them (statuses and reasons from a fixed vocabulary).
    public static func isWord(_ value: String, maxLength: Int) -> Bool {
        (1...maxLength).contains(value.utf8.count)
            && value.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }
    }
}
