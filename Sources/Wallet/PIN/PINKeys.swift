import Crypto
import Foundation
import Synchronization

/// Where the PIN keys live. Each key has a version; a stored PIN verification value names the
/// version it was made under, and new values use the newest.
public enum PINKeySource: Sendable, Hashable {
    /// `PIN_KEY_FILE`: a file of `<version> <64 hex digits>` lines, readable by the gateway alone.
    /// `pin rotate-key` appends a version to it.
    case file(path: String)
    /// `PIN_KEY`: `<version>:<hex>[,<version>:<hex>...]` (or bare hex, version 1), from a secret
    /// store. Rotated by adding an entry.
    case environment(String)
    /// `PIN_PKCS11_MODULE`, `_SLOT`, `_LABEL`, `_PIN`: keys inside a PKCS#11 token (an HSM, a cloud
    /// HSM's PKCS#11 library, or SoftHSM2), never extractable; the HMAC runs in the token.
    case pkcs11(PKCS11Settings)

    /// What a log line may say about the source: never the key or the token's PIN.
    public var summary: String { self.summary(variable: "PIN_KEY") }

    /// As ``summary``, naming `variable` for keys from the environment (`PERSONAL_DATA_KEY`).
    public func summary(variable: String) -> String {
        switch self {
        case .file(let path): return "key file \(path)"
        case .environment: return variable
        case .pkcs11(let settings): return "PKCS#11 token (\(settings.module), \(settings.slot), label \(settings.label))"
        }
    }

    /// Opens the keys. Reads a file or talks to a token: blocking, so called at start-up or from
    /// the vault's threads.
    public func open() throws(PINKeyError) -> any PINKeyStore {
        try self.open(noun: "PIN key", variable: "PIN_KEY")
    }

    /// Opens keys of another kind from the same kinds of source (the personal-data keys), naming
    /// them `noun` and their environment variable `variable` in messages.
    public func open(noun: String, variable: String) throws(PINKeyError) -> any PINKeyStore {
        switch self {
        case .file(let path): return try SoftwarePINKeys(file: path, noun: noun)
        case .environment(let value): return try SoftwarePINKeys(environment: value, variable: variable, noun: noun)
        case .pkcs11(let settings): return try PKCS11PINKeys(settings)
        }
    }
}

/// How to reach keys in a PKCS#11 token.
public struct PKCS11Settings: Sendable, Hashable {
    /// Which token: a slot's number, or the label the token was initialised with.
    public enum Slot: Sendable, Hashable, CustomStringConvertible {
        case number(UInt)
        case tokenLabel(String)

        /// A number is a slot's number; anything else is a token label.
        public init(_ text: String) {
            self = UInt(text).map(Slot.number) ?? .tokenLabel(text)
        }

        public var description: String {
            switch self {
            case .number(let number): return "slot \(number)"
            case .tokenLabel(let label): return "token \(label)"
            }
        }
    }

    /// The module's path (`/usr/lib/softhsm/libsofthsm2.so`, a vendor's library).
    public var module: String
    public var slot: Slot
    /// The keys' label (`CKA_LABEL`); each version is a key with this label and its version as `CKA_ID`.
    public var label: String
    /// The token's user PIN: a secret, never printed.
    public var pin: String

    public init(module: String, slot: Slot, label: String, pin: String) {
        self.module = module
        self.slot = slot
        self.label = label
        self.pin = pin
    }
}

/// A PIN key that cannot be used, or a key source that cannot be read. Never holds key material.
public struct PINKeyError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}

/// Versioned HMAC-SHA256 keys. Implementations are thread-safe; `authenticationCode` may block
/// (``isHardware``), in which case callers run it off the event loops and the cooperative pool.
public protocol PINKeyStore: Sendable {
    /// The versions present, ascending.
    var versions: [Int] { get }
    /// True when every operation is a call into a token that may block.
    var isHardware: Bool { get }
    /// HMAC-SHA256 of `message` under key `version`.
    func authenticationCode(for message: [UInt8], version: Int) throws(PINKeyError) -> [UInt8]
    /// Reads the source again (a version added by `pin rotate-key` in another process).
    func reload() throws(PINKeyError)
    /// Adds a version, the next one unless `version` names one (a key restored from its shares
    /// under the number it had; refused when present): `material` (32 bytes or more, made outside
    /// and backed up as shares) or, when nil, a new random key (made inside the token for PKCS#11).
    /// Returns the version.
    func addVersion(importing material: [UInt8]?, as version: Int?) throws(PINKeyError) -> Int
    /// Removes a version for good (retired: nothing stored names it any more). The caller checks
    /// that; the newest version is never removed.
    func removeVersion(_ version: Int) throws(PINKeyError)
}

extension PINKeyStore {
    /// The version new values are made under.
    public var newest: Int? { self.versions.last }

    public func addVersion(importing material: [UInt8]?) throws(PINKeyError) -> Int { try self.addVersion(importing: material, as: nil) }

    /// The version to add: `requested` when free, else the next; never past ``PINKeyVersion/maximum``.
    func versionToAdd(_ requested: Int?, present: [Int]) throws(PINKeyError) -> Int {
        guard let requested else {
            let next = (present.max() ?? 0) + 1
            guard next <= PINKeyVersion.maximum else { throw PINKeyError("no key version is left after \(PINKeyVersion.maximum)") }
            return next
        }
        guard PINKeyVersion.valid.contains(requested), !present.contains(requested) else {
            throw PINKeyError("PIN key version \(requested) is present already (or not a number from 1 to \(PINKeyVersion.maximum))")
        }
        return requested
    }
}

/// Key versions are the databases' `INT` (the key store's `kek_version`, a PIN value's version):
/// from 1 to 2^31 - 1. A key file or token naming another is refused where it is read, so no
/// later arithmetic or insert meets it.
public enum PINKeyVersion {
    public static let maximum = Int(Int32.max)
    public static let valid = 1...maximum
}

/// Keys held in this process's memory, from a file or an environment variable.
public final class SoftwarePINKeys: PINKeyStore {
    /// Shortest key accepted: 32 bytes, HMAC-SHA256's block of security.
    public static let minimumKeyBytes = 32

    private let file: String?
    private let keys: Mutex<[Int: SymmetricKey]>
    /// What the keys are, for messages: "PIN key", "personal-data key".
    let noun: String
    /// The environment variable the keys came from, for messages.
    let variable: String

    public init(file path: String, noun: String = "PIN key") throws(PINKeyError) {
        self.file = path
        self.noun = noun
        self.variable = ""
        self.keys = Mutex(try Self.read(file: path, noun: noun).0)
    }

    public init(environment value: String, variable: String = "PIN_KEY", noun: String = "PIN key") throws(PINKeyError) {
        self.file = nil
        self.noun = noun
        self.variable = variable
        self.keys = Mutex(try Self.parse(entries: value, variable: variable))
    }

    /// In-memory keys (tests and benchmarks): version 1 is `key`.
    public init(key: [UInt8], noun: String = "PIN key") {
        precondition(key.count >= Self.minimumKeyBytes, "a PIN key is at least 32 bytes")
        self.file = nil
        self.noun = noun
        self.variable = ""
        self.keys = Mutex([1: SymmetricKey(data: key)])
    }

    public var versions: [Int] { self.keys.withLock { $0.keys.sorted() } }
    public var isHardware: Bool { false }

    public func authenticationCode(for message: [UInt8], version: Int) throws(PINKeyError) -> [UInt8] {
        guard let key = self.keys.withLock({ $0[version] }) else { throw PINKeyError("no \(self.noun) version \(version)") }
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }

    public func reload() throws(PINKeyError) {
        guard let file else { return }
        let keys = try Self.read(file: file, noun: self.noun).0
        self.keys.withLock { $0 = keys }
    }

    /// Adds a version to the key file: under an exclusive lock on the file, the keys read, the new
    /// line added, written to a new file (mode 0600, the old file's owner) that is synced and
    /// renamed into place, and the directory synced. Two rotations at once add two versions.
    public func addVersion(importing material: [UInt8]?, as requested: Int?) throws(PINKeyError) -> Int {
        let material = material ?? Self.randomKey()
        guard material.count >= Self.minimumKeyBytes else { throw PINKeyError("a \(self.noun) is at least 32 bytes") }
        var added = 0
        try self.rewriteFile(adding: "added to") { keys, lines throws(PINKeyError) in
            added = try self.versionToAdd(requested, present: Array(keys.keys))
            var text = lines.joined(separator: "\n")
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            return text + "\(added) \(Self.hex(material))\n"
        }
        return added
    }

    /// Removes a version's line from the key file, under the same lock and rename as adding one.
    public func removeVersion(_ version: Int) throws(PINKeyError) {
        try self.rewriteFile(adding: "removed from") { keys, lines throws(PINKeyError) in
            guard keys[version] != nil else { throw PINKeyError("no \(self.noun) version \(version) in \(self.file ?? "")") }
            guard keys.keys.contains(where: { $0 != version }) else { throw PINKeyError("version \(version) is the only \(self.noun): it is never removed") }
            let kept = lines.filter { line in
                let fields = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
                return line.trimmingCharacters(in: .whitespaces).hasPrefix("#") || fields.first.flatMap({ Int($0) }) != version
            }
            return kept.joined(separator: "\n")
        }
    }

    /// Rewrites the key file with what `change` makes of its keys and lines: under an exclusive lock
    /// on a lock file of its own (the key file itself is replaced by a rename, and a lock on the
    /// replaced file would no longer keep anyone out), written to a new file (mode 0600, the old
    /// file's owner) that is synced and renamed into place, and the directory synced; the keys are
    /// then read again.
    private func rewriteFile(adding what: String, _ change: ([Int: SymmetricKey], [Substring]) throws(PINKeyError) -> String) throws(PINKeyError) {
        guard let file else {
            throw PINKeyError("\(self.variable) comes from the environment: a version is \(what) it in your secret store (`<version>:<64 hex digits>` entries)")
        }
        let noun = self.noun
        let lock = open(file + ".lock", O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw PINKeyError("the \(noun) file's lock \(file).lock cannot be opened") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { throw PINKeyError("the \(noun) file \(file) cannot be locked") }
        var status = stat()
        guard lstat(file, &status) == 0 else { throw PINKeyError("the \(noun) file \(file) cannot be read") }
        let (keys, lines) = try Self.read(file: file, noun: noun)
        let text = try change(keys, lines)
        try Self.replace(file, with: text, owner: (status.st_uid, status.st_gid), noun: noun)
        let updated = try Self.read(file: file, noun: noun).0
        self.keys.withLock { $0 = updated }
    }

    /// Creates a key file holding one random key (version 1), readable by this user alone; an
    /// existing file is left as it is (two processes racing: one file wins, whole). For
    /// development, where each checkout gets its own key.
    public static func createIfMissing(file path: String, noun: String = "PIN key") throws(PINKeyError) {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let temporary = try Self.writeNew(path, Self.header(noun) + "\n1 \(Self.hex(Self.randomKey()))\n", noun: noun)
        // link(2) never replaces: if another process made the file meanwhile, theirs stays.
        let linked = link(temporary, path) == 0 || errno == EEXIST
        unlink(temporary)
        guard linked else { throw PINKeyError("the \(noun) file \(path) cannot be created") }
        Self.syncDirectory(of: path)
    }

    static func header(_ noun: String) -> String {
        noun == "PIN key"
            ? """
            # ussd-gateway PIN keys: one version per line, "<version> <64 hex digits>". Secret: readable by
            # the gateway alone, backed up apart from the database (SECURITY.md: PIN keys). Versions are
            # only ever added (ussd-gateway pin rotate-key); a stored PIN value names the one it used.
            """
            : """
            # ussd-gateway \(noun)s: one version per line, "<version> <64 hex digits>". Secret: readable by
            # the gateway alone, backed up apart from the database and the key store (SECURITY.md: key
            # hierarchy). Versions are added by `ussd-gateway keys rotate` and removed by `keys retire`.
            """
    }

    /// Writes `text` to a new file next to `path` (created exclusively, mode 0600 from the start,
    /// never through a symbolic link) and syncs it; returns its path.
    private static func writeNew(_ path: String, _ text: String, noun: String) throws(PINKeyError) -> String {
        let temporary = path + ".new-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw PINKeyError("the \(noun) file \(path) cannot be written (its directory?)") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw PINKeyError("the \(noun) file \(path) cannot be written")
        }
        return temporary
    }

    private static func replace(_ path: String, with text: String, owner: (uid_t, gid_t), noun: String) throws(PINKeyError) {
        let temporary = try Self.writeNew(path, text, noun: noun)
        // Root rotating a file the gateway's user owns leaves it the gateway's.
        _ = chown(temporary, owner.0, owner.1)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw PINKeyError("the \(noun) file \(path) cannot be replaced")
        }
        Self.syncDirectory(of: path)
    }

    private static func syncDirectory(of path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }

    /// The keys, and the file's lines as they are (rewritten unchanged when a version is added).
    private static func read(file path: String, noun: String) throws(PINKeyError) -> ([Int: SymmetricKey], [Substring]) {
        var status = stat()
        guard stat(path, &status) == 0, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PINKeyError("the \(noun) file \(path) cannot be read")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw PINKeyError("the \(noun) file \(path) is open to other users (chmod 600 it)")
        }
        var keys: [Int: SymmetricKey] = [:]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (number, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, let version = Int(fields[0]), PINKeyVersion.valid.contains(version), keys[version] == nil,
                let material = Self.bytes(hex: String(fields[1])), material.count >= Self.minimumKeyBytes
            else { throw PINKeyError("the \(noun) file \(path): line \(number + 1) is not \"<new version> <64 or more hex digits>\"") }
            keys[version] = SymmetricKey(data: material)
        }
        guard !keys.isEmpty else { throw PINKeyError("the \(noun) file \(path) holds no key") }
        return (keys, lines)
    }

    private static func parse(entries value: String, variable: String) throws(PINKeyError) -> [Int: SymmetricKey] {
        var keys: [Int: SymmetricKey] = [:]
        for entry in value.split(separator: ",") {
            let parts = entry.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1)
            let (version, hex) = parts.count == 2 ? (Int(parts[0]), String(parts[1])) : (1, String(parts[0]))
            guard let version, PINKeyVersion.valid.contains(version), keys[version] == nil, let material = Self.bytes(hex: hex), material.count >= Self.minimumKeyBytes else {
                throw PINKeyError("\(variable) must be <version>:<64 or more hex digits>, comma-separated, each version once")
            }
            keys[version] = SymmetricKey(data: material)
        }
        guard !keys.isEmpty else { throw PINKeyError("\(variable) holds no key") }
        return keys
    }

    /// 32 random bytes.
    public static func randomKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    static func hex(_ bytes: [UInt8]) -> String { PINVault.hex(bytes) }
    static func bytes(hex: String) -> [UInt8]? { PINVault.bytes(hex: hex) }
}
