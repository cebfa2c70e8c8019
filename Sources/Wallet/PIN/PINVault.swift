import Basics
import ConnectionPool
import Crypto
import CryptoExtras
import Foundation
import ServiceLifecycle

/// Checks PINs the way banks do: a PIN verification value, `pvv1$<key version>$<hex>`, the
/// HMAC-SHA256 of the customer's id and the PIN under a versioned PIN key (ISO 9564, PCI PIN).
///
/// Why a key and not a work factor: a four-digit PIN has 10,000 values, so whoever holds the
/// table and the key tries them all in 10,000 computations, whatever each costs; scrypt at the
/// cost a busy short code can afford (~3 ms) makes that 30 seconds per customer, not years. What
/// protects the PINs is that the key is never where the table is: in a PKCS#11 token it never
/// leaves the hardware at all. Binding the customer's id stops a value from being copied onto
/// another customer. SECURITY.md (PIN keys) has the arithmetic and the key ceremony.
///
/// Values made under an older key version, and scrypt hashes from before (checked with
/// `PIN_PEPPER`), still verify; ``check(_:customer:against:)`` then hands back the value under
/// the newest key, which the wallet stores in the same statement that records the right PIN.
///
/// A token's calls block: they run on threads of the vault's own, never on an event loop or the
/// cooperative pool. Software keys compute in place (a microsecond).
public final class PINVault: Service, Sendable {
    /// The answer to a PIN check.
    public enum Check: Sendable, Equatable {
        case wrong
        /// Right; `replacement` is the value under the newest key when the stored one is older.
        case right(replacement: String?)
    }

    private let keys: any PINKeyStore
    private let legacyPepper: SymmetricKey?
    private let sealKey: SymmetricKey
    /// An HMAC already keyed with `sealKey`: a seal copies it rather than keying one anew.
    private let sealMAC: HMAC<SHA256>
    private let threads: OnDemandThreadPool

    /// `legacyPepper` is `PIN_PEPPER`, to check scrypt hashes not yet moved to a key.
    /// Derives the seal key from the oldest key version (one call into a token at start-up).
    public init(keys: any PINKeyStore, legacyPepper: [UInt8]? = nil, threads: Int = 2) throws(PINKeyError) {
        guard let first = keys.versions.first else { throw PINKeyError("no PIN key is present") }
        self.keys = keys
        self.legacyPepper = legacyPepper.map { SymmetricKey(data: $0) }
        // The seal's key is the PIN key's MAC of a label no PIN value's message can equal (those
        // are 8 + 4 bytes): a key of its own, from which the PIN key cannot be learnt. From the
        // oldest version, so adding a version leaves sealed session values valid.
        self.sealKey = SymmetricKey(data: try keys.authenticationCode(for: Array(Self.sealLabel.utf8), version: first))
        self.sealMAC = HMAC<SHA256>(key: self.sealKey)
        self.threads = OnDemandThreadPool(numberOfThreads: threads)
    }

    /// A vault over one in-memory key (tests and benchmarks).
    public convenience init(key: [UInt8], legacyPepper: [UInt8]? = nil) {
        try! self.init(keys: SoftwarePINKeys(key: key), legacyPepper: legacyPepper)
    }

    static let sealLabel = "ussd-gateway/session-seal/v1"

    /// Starts the threads, and stops them at graceful shutdown (after the HTTP server, so no
    /// PIN check is cut off). Without a service group they start with the first token call.
    public func run() async throws {
        if self.keys.isHardware { self.threads.start() }
        try? await gracefulShutdown()
        await self.threads.shutdown()
    }

    /// The key versions present, ascending.
    public var versions: [Int] { self.keys.versions }

    /// The value to store for `pin`, under the newest key.
    public func value(for pin: String, customer: Int64) async throws -> String {
        guard let version = self.keys.newest else { throw PINKeyError("no PIN key is present") }
        return try await self.value(for: pin, customer: customer, version: version)
    }

    /// Checks `pin` against the stored value (compared in constant time).
    public func check(_ pin: String, customer: Int64, against stored: String) async throws -> Check {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "pvv1", let version = Int(parts[1]), let expected = Self.bytes(hex: String(parts[2])) {
            let given = try await self.mac(for: pin, customer: customer, version: version)
            guard Self.constantTimeEqual(given, expected) else { return .wrong }
            guard let newest = self.keys.newest, newest != version else { return .right(replacement: nil) }
            return .right(replacement: try await self.value(for: pin, customer: customer, version: newest))
        }
        if parts.first == "scrypt" {
            guard try await self.checkScrypt(pin, against: stored) else { return .wrong }
            return .right(replacement: try await self.value(for: pin, customer: customer))
        }
        throw PINKeyError("a stored PIN value has an unknown format")
    }

    /// True when `pin` is the one `stored` was made from.
    public func matches(_ pin: String, customer: Int64, stored: String) async throws -> Bool {
        try await self.check(pin, customer: customer, against: stored) != .wrong
    }

    /// Each key version's check value: the first 8 bytes of its HMAC of a fixed label, in hex (a
    /// key check value, as HSMs show one): tells two keys apart without revealing either.
    public func checkValues() async throws -> [(version: Int, value: String)] {
        let keys = self.keys
        let compute: @Sendable () throws -> [(Int, String)] = {
            try keys.versions.map { version in
                (version, Self.hex(Array(try keys.authenticationCode(for: Array(Self.checkLabel.utf8), version: version).prefix(8))))
            }
        }
        return keys.isHardware ? try await self.threads.run(compute) : try compute()
    }

    static let checkLabel = "ussd-gateway/key-check-value/v1"

    /// A deterministic keyed seal of a secret, for comparing a PIN typed twice (or a hop's input)
    /// without storing it. Its key is derived apart from the PIN keys.
    public func seal(_ secret: String) -> String {
        var mac = self.sealMAC
        var secret = secret
        secret.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
        return mac.finalize().withUnsafeBytes { Hex.encode($0) }
    }

    private func value(for pin: String, customer: Int64, version: Int) async throws -> String {
        "pvv1$\(version)$\(Self.hex(try await self.mac(for: pin, customer: customer, version: version)))"
    }

    /// HMAC(key version, customer id as 8 bytes big-endian || PIN). A version this process has not
    /// seen (added by `pin rotate-key` since it started) makes it read its keys again, once.
    private func mac(for pin: String, customer: Int64, version: Int) async throws -> [UInt8] {
        let message = withUnsafeBytes(of: customer.bigEndian) { Array($0) } + Array(pin.utf8)
        let keys = self.keys
        let compute: @Sendable () throws -> [UInt8] = {
            if !keys.versions.contains(version) { try keys.reload() }
            return try keys.authenticationCode(for: message, version: version)
        }
        // A token's call, or a key file read again, blocks: off the cooperative pool.
        if keys.isHardware || !keys.versions.contains(version) { return try await self.threads.run(compute) }
        return try compute()
    }

    // MARK: scrypt hashes from before the keys

    /// scrypt's cost parameters, as the old hashes carry them.
    public struct ScryptCost: Sendable, Hashable {
        public var n: Int
        public var r: Int
        public var p: Int

        public init(n: Int, r: Int, p: Int) {
            (self.n, self.r, self.p) = (n, r, p)
        }

        /// What production hashed with before PIN keys.
        public static let production = ScryptCost(n: 1 << 10, r: 8, p: 1)
        public static let testing = ScryptCost(n: 1 << 8, r: 4, p: 1)
    }

    /// `scrypt$N$r$p$<salt hex>$<hash hex>` as the gateway stored them before PIN keys: scrypt over
    /// HMAC-SHA256(pepper, PIN). For tests of the move from them, and nothing else.
    public static func scryptHash(_ pin: String, pepper: [UInt8], cost: ScryptCost = .testing) throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let digest = try Self.scrypt(pin, pepper: SymmetricKey(data: pepper), salt: salt, cost: cost)
        return "scrypt$\(cost.n)$\(cost.r)$\(cost.p)$\(Self.hex(salt))$\(Self.hex(digest))"
    }

    private func checkScrypt(_ pin: String, against stored: String) async throws -> Bool {
        let parts = stored.split(separator: "$").map(String.init)
        guard parts.count == 6, let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
            (2...(1 << 20)).contains(n), (1...32).contains(r), (1...16).contains(p),
            let salt = Self.bytes(hex: parts[4]), let expected = Self.bytes(hex: parts[5])
        else { throw PINKeyError("a stored scrypt PIN hash is malformed") }
        guard let pepper = self.legacyPepper else {
            throw PINKeyError("a customer's PIN is still an scrypt hash, and PIN_PEPPER is not set to check it")
        }
        let digest = try await self.threads.run { try Self.scrypt(pin, pepper: pepper, salt: salt, cost: ScryptCost(n: n, r: r, p: p)) }
        return Self.constantTimeEqual(digest, expected)
    }

    private static func scrypt(_ pin: String, pepper: SymmetricKey, salt: [UInt8], cost: ScryptCost) throws -> [UInt8] {
        let peppered = Array(HMAC<SHA256>.authenticationCode(for: Array(pin.utf8), using: pepper))
        let key = try KDF.Scrypt.deriveKey(
            from: peppered, salt: salt, outputByteCount: 32, rounds: cost.n, blockSize: cost.r, parallelism: cost.p
        )
        return key.withUnsafeBytes { Array($0) }
    }

    // MARK: Bytes

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool { ConstantTime.equal(a, b) }

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

    static func bytes(hex: String) -> [UInt8]? { Hex.decode(hex) }
}
