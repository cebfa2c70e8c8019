import Crypto

/// The id of one request to pay or transfer (`X-Reference-Id`): a UUID shaped as version 4, derived
/// from our own idempotency key so a retry of the same movement always names the same MoMo
/// request (MoMo refuses a second request under an id it has seen, 409 `RESOURCE_ALREADY_EXIST`).
///
/// Derivation: SHA-256 of ``domain`` followed by the key, its first 16 bytes, the version nibble
/// set to 4 and the RFC 4122 variant bits to `10`. Written lowercase, 8-4-4-4-12.
public struct MoMoReference: Sendable, Hashable, CustomStringConvertible {
    /// Separates these ids from any other use of SHA-256 over the same keys.
    public static let domain = "ussd-gateway/momo-reference/v1\u{0}"

    /// The canonical lowercase form.
    public let uuidString: String

    /// The reference of the movement whose idempotency key is `idempotencyKey`.
    public init(idempotencyKey: String) {
        var bytes = Array(SHA256.hash(data: Array((Self.domain + idempotencyKey).utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        self.uuidString = Self.format(bytes)
    }

    /// A reference read back (from a callback URL): exactly a lowercase 8-4-4-4-12 UUID of
    /// version 4 and the RFC 4122 variant, as ``init(idempotencyKey:)`` writes them; nil otherwise.
    public init?(uuid text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return nil }
            } else {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) else { return nil }
            }
        }
        guard bytes[14] == UInt8(ascii: "4"), [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[19]) else {
            return nil
        }
        self.uuidString = text
    }

    public var description: String { self.uuidString }

    private static func format(_ bytes: [UInt8]) -> String {
        let hex = "0123456789abcdef".utf8.map { $0 }
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(index) { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
