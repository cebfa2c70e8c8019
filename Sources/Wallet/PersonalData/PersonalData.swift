import ConnectionPool
import Crypto
import Foundation
import Postgres
import ServiceLifecycle
import Synchronization

/// Personal data sealed at rest by envelope encryption (SECURITY.md: key hierarchy; PRIVACY.md).
///
/// - Every data subject (a customer; a calendar month for data that belongs to no customer yet)
///   has a **data key** of their own: 32 random bytes, used with AES-256-GCM.
/// - Data keys live in the **key store**, a database apart from the ledger's
///   (`PERSONAL_DATA_KEYS_URL`), each **wrapped** by a key-encryption key (KEK): AES-256-GCM under
///   a wrapping key that is the KEK's HMAC of the subject, so the KEK itself (a key file, the
///   environment, or a PKCS#11 token where it never leaves the hardware) only ever computes HMACs.
/// - KEKs are versioned like the PIN keys: ``rewrap(batchSize:)`` moves every data key to the
///   newest version without touching the data they seal, and ``retire(version:)`` then removes an
///   old one.
/// - A sealed value's associated data is its table, column, row and subject
///   (``PersonalField``): copied elsewhere it fails to open.
/// - **Erasure** destroys the subject's data key (``destroy(_:reason:)``): every copy of their
///   fields, in the ledger's database and in its backups, is unreadable from then on, while the
///   ledger's rows stay whole under the subject's pseudonymous id.
///
/// Unwrapped data keys are kept in memory for `maximumAge` (at most `cacheLimit` of them), so a
/// menu hop that shows a name costs an AES-GCM open, not a trip to the key store.
public final class PersonalData: Service, Sendable {
    /// The subject whose key makes the blind index's hashes (searching sealed names).
    public static let indexSubject = UUID(uuidString: "00000000-0000-8000-8000-000000000001")!

    public enum Purpose: String, Sendable {
        case customer, period, index
    }

    private struct Kept {
        let key: SymmetricKey
        let read: ContinuousClock.Instant
    }

    let keys: any PINKeyStore
    /// The key store's database.
    public let store: PostgresClient
    let cacheLimit: Int
    let maximumAge: Duration
    private let kept = Mutex<[UUID: Kept]>([:])
    private let threads: OnDemandThreadPool
    /// Run once before the key store is first used (development: make and migrate its database).
    private let prepare: (@Sendable () async throws -> Void)?
    private let prepared = Mutex(false)
    /// The index's data key once read: it is never rotated away or destroyed, and a movement's
    /// fingerprint must not wait on the key store (nor fail when it is away) after the first read.
    private let fingerprintKey = Mutex<SymmetricKey?>(nil)

    public init(
        keys: any PINKeyStore, store: PostgresClient, cacheLimit: Int = 100_000, maximumAge: Duration = .seconds(600),
        prepare: (@Sendable () async throws -> Void)? = nil
    ) {
        self.keys = keys
        self.store = store
        self.prepare = prepare
        self.cacheLimit = max(1, cacheLimit)
        self.maximumAge = maximumAge
        self.threads = OnDemandThreadPool(numberOfThreads: 2)
    }

    /// Starts the token's threads and stops them at graceful shutdown.
    public func run() async throws {
        if self.keys.isHardware { self.threads.start() }
        try? await gracefulShutdown()
        await self.threads.shutdown()
    }

    /// The KEK versions present, ascending.
    public var versions: [Int] { self.keys.versions }

    // MARK: Sealing

    /// `text` sealed for `subject` at `field`: a format byte, then AES-256-GCM's nonce, ciphertext
    /// and tag. Makes the subject's data key when they have none yet.
    public func seal(_ text: String, for subject: UUID, purpose: Purpose = .customer, at field: PersonalField) async throws -> Data {
        guard let key = try await self.dataKey(subject, purpose: purpose, create: true) else { throw PersonalDataError.destroyed(subject) }
        let box = try AES.GCM.seal(Data(text.utf8), using: key, authenticating: field.associatedData(subject: subject))
        var sealed = Data([Self.format])
        sealed.append(box.combined!)
        return sealed
    }

    /// The text sealed at `field` for `subject`, or nil when the subject's key was destroyed
    /// (erased). Throws ``PersonalDataError/doesNotOpen(_:)`` for a value that was moved or altered.
    public func open(_ sealed: Data, for subject: UUID, at field: PersonalField) async throws -> String? {
        guard sealed.first == Self.format, sealed.count >= 1 + 12 + 16 else { throw PersonalDataError.malformed(field) }
        guard let key = try await self.dataKey(subject, purpose: nil, create: false) else { return nil }
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
        } catch {
            throw PersonalDataError.malformed(field)
        }
        guard let plain = try? AES.GCM.open(box, using: key, authenticating: field.associatedData(subject: subject)) else {
            throw PersonalDataError.doesNotOpen(field)
        }
        return String(decoding: plain, as: UTF8.self)
    }

    /// The keyed hashes a sealed name is found by: one per word of the name (lower-cased, accents
    /// and spacing as typed), 16 bytes each, under the index's own data key. A search for a name
    /// hashes its words the same way and asks for rows holding all of them. At most the first 20
    /// words are indexed.
    public func blindIndex(_ text: String) async throws -> [Data] {
        guard let key = try await self.dataKey(Self.indexSubject, purpose: .index, create: true) else { throw PersonalDataError.destroyed(Self.indexSubject) }
        return Self.words(text).prefix(20).map { word in
            Data(HMAC<SHA256>.authenticationCode(for: Data("name|\(word)".utf8), using: key).prefix(16))
        }
    }

    /// A keyed fingerprint of `text`, `h1:` and 64 hex digits: HMAC-SHA-256 under the index's data
    /// key. A movement's idempotency fingerprint names its numbers; the ledger keeps this instead,
    /// so that its rows (kept for the legal period) hold no number a dump could read or a guess
    /// could confirm without the key store.
    public func fingerprint(_ text: String) async throws -> String {
        let key: SymmetricKey
        if let known = self.fingerprintKey.withLock({ $0 }) {
            key = known
        } else {
            guard let read = try await self.dataKey(Self.indexSubject, purpose: .index, create: true) else {
                throw PersonalDataError.destroyed(Self.indexSubject)
            }
            self.fingerprintKey.withLock { $0 = read }
            key = read
        }
        let digits = Array("0123456789abcdef".utf8)
        var hex = Array("h1:".utf8)
        hex.reserveCapacity(67)
        for byte in HMAC<SHA256>.authenticationCode(for: Data("fingerprint|\(text)".utf8), using: key) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    static func words(_ text: String) -> [String] {
        var seen = Set<String>()
        return text.precomposedStringWithCanonicalMapping.lowercased()
            .split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "." })
            .map(String.init).filter { seen.insert($0).inserted }
    }

    /// The subject that seals personal data of `date`'s month which belongs to no customer (an SMS
    /// from a number with no wallet): retention destroys the month's key when its period is over.
    public static func periodSubject(_ date: Date) -> UUID {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi")!
        let parts = calendar.dateComponents([.year, .month], from: date)
        return Self.periodSubject(year: parts.year!, month: parts.month!)
    }

    public static func periodSubject(year: Int, month: Int) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(String(format: "ussd-gateway/period/%04d-%02d", year, month).utf8)).prefix(16))
        // RFC 9562 version 8 (made by its own rule), variant 10.
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static let format: UInt8 = 1

    // MARK: Data keys

    /// The subject's data key: kept, or read from the key store and unwrapped; made when missing
    /// and `create`. Nil when the key was destroyed and not `create`.
    func dataKey(_ subject: UUID, purpose: Purpose?, create: Bool) async throws -> SymmetricKey? {
        let now = ContinuousClock.now
        if let kept = self.kept.withLock({ $0[subject] }), now - kept.read < self.maximumAge { return kept.key }
        try await self.prepareStore()
        if let row = try await self.store.query("SELECT kek_version, wrapped FROM data_keys WHERE subject = \(subject.uuidString)").single() {
            let (version, wrapped) = try row.decode((Int, Data).self)
            let key = try await self.unwrap(wrapped, subject: subject, version: version)
            self.keep(key, for: subject, at: now)
            return key
        }
        if try await !self.store.query("SELECT 1 FROM destroyed_keys WHERE subject = \(subject.uuidString)").isEmpty {
            if create { throw PersonalDataError.destroyed(subject) }
            return nil
        }
        guard create, let purpose else { throw PersonalDataError.missingKey(subject) }
        let fresh = SymmetricKey(size: .bits256)
        for attempt in 0..<2 {
            guard let version = self.keys.newest else { throw PersonalDataError.keys("no personal-data key (KEK) is present") }
            let wrapped = try await self.wrap(fresh, subject: subject, version: version)
            do {
                // Two processes making one subject's key at once: the first row stays, and both use it.
                try await self.store.query(
                    """
                    INSERT INTO data_keys (subject, purpose, kek_version, wrapped) VALUES (\(subject.uuidString), \(purpose.rawValue), \(version), \(wrapped))
                    ON CONFLICT (subject) DO NOTHING
                    """
                )
                break
            } catch let error as PostgresError where error.sqlState == "UK001" {
                throw PersonalDataError.destroyed(subject)
            } catch let error as PostgresError where error.sqlState == "UK002" {
                // `keys rotate` made a newer version current: read the key source again (a file or a
                // token); environment keys are the deployment's to give this process.
                // A token's call or a file's read blocks: off the cooperative pool and the event loops.
                let keys = self.keys
                _ = try? await self.threads.run { try keys.reload() }
                if attempt == 1 || self.keys.newest == version {
                    throw PersonalDataError.keys(
                        "a newer personal-data key (KEK) version is current than this process holds (\(version)): give it the new key (PERSONAL_DATA_KEY) and restart it")
                }
            }
        }
        guard let key = try await self.dataKey(subject, purpose: purpose, create: false) else { throw PersonalDataError.destroyed(subject) }
        return key
    }

    /// Runs `prepare` until it succeeds once (concurrent first uses may each run it: it is idempotent).
    public func prepareStore() async throws {
        guard let prepare, !self.prepared.withLock({ $0 }) else { return }
        try await prepare()
        self.prepared.withLock { $0 = true }
    }

    /// Keeps an unwrapped key; every 256th keeping drops the keys past their age, so none stays in
    /// memory much longer than `maximumAge` after it was read.
    private func keep(_ key: SymmetricKey, for subject: UUID, at now: ContinuousClock.Instant) {
        self.kept.withLock { kept in
            if kept.count >= self.cacheLimit { kept.removeAll(keepingCapacity: true) }
            kept[subject] = Kept(key: key, read: now)
            if kept.count % 256 == 0 { kept = kept.filter { now - $0.value.read < self.maximumAge } }
        }
    }

    /// The wrapping key for `subject` under KEK `version`: the KEK's HMAC of the subject (in the
    /// token, on the threads, when the KEK is in one). A version another process added is found by
    /// reading the key source again.
    private func wrappingKey(_ subject: UUID, version: Int) async throws -> SymmetricKey {
        let message = Array("ussd-gateway/data-key-wrap/v1|\(subject.uuidString.lowercased())".utf8)
        let keys = self.keys
        let compute: @Sendable () throws -> [UInt8] = {
            if !keys.versions.contains(version) { try keys.reload() }
            return try keys.authenticationCode(for: message, version: version)
        }
        do {
            // A token's call, or a key file read again, blocks: off the cooperative pool (as PINVault).
            let blocks = keys.isHardware || !keys.versions.contains(version)
            return SymmetricKey(data: blocks ? try await self.threads.run(compute) : try compute())
        } catch let error as PINKeyError {
            throw PersonalDataError.keys("personal-data key (KEK) version \(version): \(error.reason)")
        }
    }

    private static func wrapAssociatedData(_ subject: UUID, version: Int) -> Data {
        Data("ussd-gateway/data-key/v1|\(subject.uuidString.lowercased())|\(version)".utf8)
    }

    func wrap(_ key: SymmetricKey, subject: UUID, version: Int) async throws -> Data {
        let wrapping = try await self.wrappingKey(subject, version: version)
        let bytes = key.withUnsafeBytes { Data($0) }
        return try AES.GCM.seal(bytes, using: wrapping, authenticating: Self.wrapAssociatedData(subject, version: version)).combined!
    }

    func unwrap(_ wrapped: Data, subject: UUID, version: Int) async throws -> SymmetricKey {
        let wrapping = try await self.wrappingKey(subject, version: version)
        guard let box = try? AES.GCM.SealedBox(combined: wrapped),
            let bytes = try? AES.GCM.open(box, using: wrapping, authenticating: Self.wrapAssociatedData(subject, version: version))
        else {
            throw PersonalDataError.keys(
                "the data key of subject \(subject.uuidString.lowercased()) does not unwrap under KEK version \(version): the wrong key file or token, or an altered key store")
        }
        return SymmetricKey(data: bytes)
    }

    // MARK: Erasure, rotation

    /// Destroys `subject`'s data key, recording that it did (and why): every value sealed for them
    /// reads as erased from then on, here and in every other process once their kept copy ages out
    /// (their rows are blanked in the same erasure, so nothing is left to read meanwhile). True
    /// when a key was there to destroy.
    @discardableResult
    public func destroy(_ subject: UUID, reason: String) async throws -> Bool {
        try await self.prepareStore()
        // Through the key store's own function: it records who (the login) and refuses staff the
        // blind index's and the months' keys.
        let destroyed = try await self.store.query("SELECT data_key_destroy(\(subject.uuidString)::uuid, \(String(reason.prefix(200))))").single()!
            .decode(Bool.self, column: 0)
        _ = self.kept.withLock { $0.removeValue(forKey: subject) }
        return destroyed
    }

    /// Re-wraps every data key not under the newest KEK version, `batchSize` at a time (each batch
    /// its own short transaction, rows taken with SKIP LOCKED so gateways keep making keys); the
    /// data the keys seal is not touched. Returns how many were re-wrapped.
    public func rewrap(batchSize: Int = 500) async throws -> Int {
        try await self.prepareStore()
        try self.keys.reload()
        guard let newest = self.keys.newest else { throw PersonalDataError.keys("no personal-data key (KEK) is present") }
        // Current first: from here no process wraps a new key under an older version.
        try await self.store.query(
            "INSERT INTO kek_current (one, version) VALUES (true, \(newest)) ON CONFLICT (one) DO UPDATE SET version = greatest(kek_current.version, excluded.version)")
        var total = 0
        while true {
            let moved = try await self.store.transaction { tx in
                let rows = try await tx.query(
                    """
                    SELECT subject::text, kek_version, wrapped FROM data_keys WHERE kek_version <> \(newest)
                    ORDER BY subject LIMIT \(max(1, batchSize)) FOR UPDATE SKIP LOCKED
                    """
                ).map { try $0.decode((String, Int, Data).self) }
                for (text, version, wrapped) in rows {
                    let subject = UUID(uuidString: text)!
                    let key = try await self.unwrap(wrapped, subject: subject, version: version)
                    let again = try await self.wrap(key, subject: subject, version: newest)
                    try await tx.query(
                        "UPDATE data_keys SET kek_version = \(newest), wrapped = \(again), rewrapped_at = now() WHERE subject = \(text)"
                    )
                }
                return rows.count
            }
            total += moved
            if moved == 0 { return total }
        }
    }

    /// How many data keys each KEK version wraps.
    public func keysByVersion() async throws -> [Int: Int] {
        try await self.prepareStore()
        var counts: [Int: Int] = [:]
        for row in try await self.store.query("SELECT kek_version, count(*)::bigint FROM data_keys GROUP BY kek_version") {
            let (version, count) = try row.decode((Int, Int).self)
            counts[version] = count
        }
        return counts
    }

    /// Removes KEK `version` from its source, once no data key is wrapped under it (after
    /// ``rewrap(batchSize:)``); the newest version is never retired.
    public func retire(version: Int) async throws {
        try self.keys.reload()
        guard self.keys.versions.contains(version) else { throw PersonalDataError.keys("there is no personal-data key (KEK) version \(version)") }
        guard version != self.keys.newest else {
            throw PersonalDataError.keys("version \(version) is the newest personal-data key (KEK): add a newer one first (keys rotate)")
        }
        let still = try await self.keysByVersion()[version] ?? 0
        guard still == 0 else {
            throw PersonalDataError.keys("\(still) data key(s) are still wrapped under KEK version \(version): run `keys rotate --rewrap-only` first")
        }
        try self.keys.removeVersion(version)
    }

    /// Adds the next KEK version to its source (a file or a token; the environment's is added by
    /// hand) and re-wraps every data key under it. Returns the version and how many were re-wrapped.
    public func rotate(importing material: [UInt8]? = nil, batchSize: Int = 500) async throws -> (version: Int, rewrapped: Int) {
        let version = try self.keys.addVersion(importing: material)
        return (version, try await self.rewrap(batchSize: batchSize))
    }

    /// How many unwrapped data keys this process keeps now (for tests and metrics).
    public var keptKeys: Int { self.kept.withLock { $0.count } }

    /// Forgets every kept data key (tests: the next read goes to the key store).
    public func forgetKeptKeys() { self.kept.withLock { $0.removeAll() } }
}
