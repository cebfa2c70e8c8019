import Basics
import Crypto
import CryptoExtras
import Foundation

/// Staff passwords, hashed with scrypt (memory-hard: 2^15 rounds of 8 blocks take 32 MiB each) and
/// kept as `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>` (base64), so the cost can rise later without
/// losing the hashes already kept. A hash takes tens of milliseconds of one core: the desk runs it
/// on a thread of its own (``StaffDirectory``), never on an event loop.
public enum StaffPassword {
    public struct Cost: Sendable, Hashable {
        public let log2Rounds: Int
        public let blockSize: Int
        public let parallelism: Int

        public static let standard = Cost(log2Rounds: 15, blockSize: 8, parallelism: 1)

        public init(log2Rounds: Int, blockSize: Int, parallelism: Int) {
            (self.log2Rounds, self.blockSize, self.parallelism) = (log2Rounds, blockSize, parallelism)
        }
    }

    /// Why a password is refused before it is hashed.
    public static func problem(_ password: String) -> String? {
        if password.count < 12 { return "a password is at least 12 characters" }
        if password.utf8.count > 256 { return "a password is at most 256 bytes" }
        if password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return "a password has no control characters" }
        return nil
    }

    public static func hash(_ password: String, cost: Cost = .standard) throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let key = try self.derive(password, salt: salt, cost: cost)
        return "scrypt$\(cost.log2Rounds)$\(cost.blockSize)$\(cost.parallelism)$\(Data(salt).base64EncodedString())$\(key.base64EncodedString())"
    }

    /// Whether `password` is the one `stored` was made from; false for a malformed or unknown form.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt", let log2 = Int(parts[1]), (10...20).contains(log2), let r = Int(parts[2]), (1...32).contains(r),
            let p = Int(parts[3]), (1...16).contains(p), let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
            expected.count == 32, password.utf8.count <= 256,
            let derived = try? self.derive(password, salt: Array(salt), cost: Cost(log2Rounds: log2, blockSize: r, parallelism: p))
        else { return false }
        return ConstantTime.equal(derived, expected)
    }

    /// A hash of nothing anyone knows, checked for an unknown login so that its answer takes as long.
    public static let decoy = (try? hash(UUID().uuidString + UUID().uuidString)) ?? "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    /// A password made for someone (a new member of staff, an administrator's reset): 20
    /// characters from an alphabet without look-alikes, about 115 bits.
    public static func generate() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789")
        return String((0..<20).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }

    static func derive(_ password: String, salt: [UInt8], cost: Cost) throws -> Data {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: 1 << cost.log2Rounds, blockSize: cost.blockSize,
            parallelism: cost.parallelism
        )
        return key.withUnsafeBytes { Data($0) }
    }
}
