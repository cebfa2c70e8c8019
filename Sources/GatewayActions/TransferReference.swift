/// The short reference a customer reads out for a transfer (receipts, SMS, support calls).
public enum TransferReference {
    /// A short reference a customer can read out: ten characters derived from the transfer key.
    public static func of(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<10).map { index in alphabet[Int((hash >> (UInt64(index) * 5)) & 31)] })
    }
}
