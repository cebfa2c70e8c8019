/// The OriginatorConversationID of a Transaction Status query: 128 bits from the system's
/// cryptographically secure generator (`getrandom` on Linux), in hex. Never derived from a payout,
/// a session or a receipt: an answer naming it proves it came from whoever we asked, because nobody
/// else ever saw it.
public enum StatusQueryID {
    /// A fresh id, `TS` and 32 hex digits.
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let words = (generator.next() as UInt64, generator.next() as UInt64)
        return "TS" + Self.hex(words.0) + Self.hex(words.1)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
