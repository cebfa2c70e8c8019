import Crypto
import CryptoExtras
import Foundation
import ConnectionPool
import ServiceLifecycle

/// Hashes PINs slowly and with a server-side secret: scrypt over HMAC-SHA256(pepper, PIN) with a
/// random salt per customer. A four-digit PIN has only 10,000 values, so the pepper (which never
/// touches the database) is what keeps a stolen table from being brute-forced; scrypt slows down
/// anyone who has both.
///
/// scrypt is deliberately expensive CPU work, so it runs on threads of its own, never on the
/// Swift cooperative pool.
public final class PINHasher: Service, Sendable {
    /// scrypt's cost: memory and time grow with `n`.
    public struct Cost: Sendable, Hashable {
        public var n: Int
        public var r: Int
        public var p: Int
        /// 1 MiB and about 3.4 ms per hash on this project's benchmark machine (`PIN_HASH_SCRYPT_N`
        /// raises it). Why not more: a four-digit PIN has 10,000 values, so whoever holds both the
        /// table and the pepper tries them all in 10,000 hash times whatever the cost (34 s here;
        /// 10 minutes at n = 2^14); the pepper and the three-strikes lock are the protection. Every
        /// PIN hop pays the cost, though: at n = 2^14 (58 ms) two cores verify about 34 PINs a second,
        /// which a busy short code outruns.
        public static let production = Cost(n: 1 << 10, r: 8, p: 1)
        /// Cheap, for tests only: the scheme is the same.
        public static let testing = Cost(n: 1 << 8, r: 4, p: 1)

        public init(n: Int, r: Int, p: Int) {
            self.n = n
            self.r = r
            self.p = p
        }
    }

    private let pepper: SymmetricKey
    private let cost: Cost
    private let threads: OnDemandThreadPool

    /// `pepper` is the `PIN_PEPPER` secret; at least 16 bytes.
    public init(pepper: [UInt8], cost: Cost = .production, threads: Int = 2) {
        precondition(pepper.count >= 16, "PIN_PEPPER must be at least 16 bytes")
        self.pepper = SymmetricKey(data: pepper)
        self.cost = cost
        self.threads = OnDemandThreadPool(numberOfThreads: threads)
    }

    /// Starts the hashing threads, and stops them at graceful shutdown (after the HTTP server, so no
    /// PIN check is cut off). Without a service group they start with the first hash.
    public func run() async throws {
        self.threads.start()
        try? await gracefulShutdown()
        await self.threads.shutdown()
    }

    /// `scrypt$N$r$p$<salt hex>$<hash hex>` for storing.
    public func hash(_ pin: String) async throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let cost = self.cost
        let digest = try await self.derive(pin, salt: salt, cost: cost)
        return "scrypt$\(cost.n)$\(cost.r)$\(cost.p)$\(Self.hex(salt))$\(Self.hex(digest))"
    }

    /// True when `pin` matches a stored hash (compared in constant time).
    public func verify(_ pin: String, against stored: String) async throws -> Bool {
        let parts = stored.split(separator: "$").map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
            let salt = Self.bytes(hex: parts[4]), let expected = Self.bytes(hex: parts[5])
        else { throw WalletError.invalidArgument("stored PIN hash has an unknown format") }
        let digest = try await self.derive(pin, salt: salt, cost: Cost(n: n, r: r, p: p))
        guard digest.count == expected.count else { return false }
        return zip(digest, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// A deterministic keyed seal of a secret, for comparing a PIN typed twice without storing it.
    public func seal(_ secret: String) -> String {
        Self.hex(Array(HMAC<SHA256>.authenticationCode(for: Array(("seal:" + secret).utf8), using: self.pepper)))
    }

    private func derive(_ pin: String, salt: [UInt8], cost: Cost) async throws -> [UInt8] {
        let peppered = Array(HMAC<SHA256>.authenticationCode(for: Array(pin.utf8), using: self.pepper))
        return try await self.threads.run {
            let key = try KDF.Scrypt.deriveKey(
                from: peppered, salt: salt, outputByteCount: 32, rounds: cost.n, blockSize: cost.r, parallelism: cost.p
            )
            return key.withUnsafeBytes { Array($0) }
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func bytes(hex: String) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
