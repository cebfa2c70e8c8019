import CPKCS11
import Synchronization

/// PIN keys inside a PKCS#11 token: each version a secret key labelled ``PKCS11Settings/label``
/// with its version as `CKA_ID`, sensitive and never extractable. The HMAC runs in the token, so
/// the gateway never holds a PIN key; a stolen host and database give an attacker nothing to try
/// PINs offline with. Every call blocks (a network HSM answers over the wire): ``PINVault`` makes
/// them on its own threads.
public final class PKCS11PINKeys: PINKeyStore, @unchecked Sendable {
    // @unchecked: `token` is set once and the module is initialised with CKF_OS_LOCKING_OK; each
    // call takes a session of its own (CPKCS11), so calls from several threads are safe.
    private let token: OpaquePointer
    private let label: String
    /// Version to the key's object handle.
    private let handles: Mutex<[Int: UInt]>

    public init(_ settings: PKCS11Settings) throws(PINKeyError) {
        var error = [CChar](repeating: 0, count: 256)
        let opened: OpaquePointer? = settings.pin.withCString { pin in
            switch settings.slot {
            case .number(let number):
                return cpkcs11_open(settings.module, nil, UInt(number), pin, settings.pin.utf8.count, &error, error.count)
            case .tokenLabel(let label):
                return cpkcs11_open(settings.module, label, 0, pin, settings.pin.utf8.count, &error, error.count)
            }
        }
        guard let opened else { throw PINKeyError("PKCS#11 (\(settings.module), \(settings.slot)): \(Self.text(error))") }
        self.token = opened
        self.label = settings.label
        self.handles = Mutex([:])
        do {
            try self.reload()
        } catch {
            cpkcs11_close(opened)
            throw error
        }
    }

    deinit { cpkcs11_close(self.token) }

    public var versions: [Int] { self.handles.withLock { $0.keys.sorted() } }
    public var isHardware: Bool { true }

    public func authenticationCode(for message: [UInt8], version: Int) throws(PINKeyError) -> [UInt8] {
        do {
            return try self.hmac(message, version: version)
        } catch {
            // The token may have lost the login or the key handles (a failover, a restart): log in
            // again, find the keys again, and try once more.
            var reason = [CChar](repeating: 0, count: 256)
            guard cpkcs11_relogin(self.token, &reason, reason.count) == 0 else { throw PINKeyError("PKCS#11: \(Self.text(reason))") }
            try self.reload()
            return try self.hmac(message, version: version)
        }
    }

    private func hmac(_ message: [UInt8], version: Int) throws(PINKeyError) -> [UInt8] {
        guard let handle = self.handles.withLock({ $0[version] }) else { throw PINKeyError("no PIN key version \(version) in the token") }
        var mac = [UInt8](repeating: 0, count: 32)
        var error = [CChar](repeating: 0, count: 256)
        let status = cpkcs11_hmac_sha256(self.token, handle, message, message.count, &mac, &error, error.count)
        guard status == 0 else { throw PINKeyError("PKCS#11: \(Self.text(error))") }
        return mac
    }

    /// Finds the keys again: a version another process added.
    public func reload() throws(PINKeyError) {
        let capacity = 256
        var handles = [UInt](repeating: 0, count: capacity)
        var ids = [UInt8](repeating: 0, count: capacity * 32)
        var lengths = [Int](repeating: 0, count: capacity)
        var error = [CChar](repeating: 0, count: 256)
        let found = cpkcs11_find_keys(self.token, self.label, &handles, &ids, &lengths, capacity, &error, error.count)
        guard found >= 0 else { throw PINKeyError("PKCS#11: \(Self.text(error))") }
        var byVersion: [Int: UInt] = [:]
        for index in 0..<found {
            let id = ids[index * 32..<index * 32 + lengths[index]]
            // A key of ours has its version as its ID, in decimal digits; other keys under the label are not ours.
            guard let version = Int(String(decoding: id, as: UTF8.self)), PINKeyVersion.valid.contains(version) else { continue }
            guard byVersion[version] == nil else { throw PINKeyError("PKCS#11: two keys labelled \(self.label) have version \(version)") }
            byVersion[version] = handles[index]
        }
        self.handles.withLock { $0 = byVersion }
    }

    /// Makes the next version in the token, or imports `material` as it (non-extractable from then on).
    public func addVersion(importing material: [UInt8]?, as requested: Int?) throws(PINKeyError) -> Int {
        try self.reload()
        let version = try self.versionToAdd(requested, present: self.versions)
        let id = Array(String(version).utf8)
        var handle: UInt = 0
        var error = [CChar](repeating: 0, count: 256)
        let status: UInt
        if let material {
            guard material.count >= SoftwarePINKeys.minimumKeyBytes else { throw PINKeyError("a PIN key is at least 32 bytes") }
            status = cpkcs11_import_key(self.token, self.label, id, id.count, material, material.count, &handle, &error, error.count)
        } else {
            status = cpkcs11_generate_key(self.token, self.label, id, id.count, &handle, &error, error.count)
        }
        guard status == 0 else { throw PINKeyError("PKCS#11: \(Self.text(error))") }
        self.handles.withLock { $0[version] = handle }
        return version
    }

    /// Destroys a version's key in the token.
    public func removeVersion(_ version: Int) throws(PINKeyError) {
        try self.reload()
        guard let handle = self.handles.withLock({ $0[version] }) else { throw PINKeyError("no key version \(version) labelled \(self.label) in the token") }
        guard self.versions.contains(where: { $0 != version }) else { throw PINKeyError("version \(version) is the only key labelled \(self.label): it is never removed") }
        var error = [CChar](repeating: 0, count: 256)
        guard cpkcs11_destroy_key(self.token, handle, &error, error.count) == 0 else { throw PINKeyError("PKCS#11: \(Self.text(error))") }
        self.handles.withLock { $0[version] = nil }
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
