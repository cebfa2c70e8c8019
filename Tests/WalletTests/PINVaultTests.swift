import Crypto
import Foundation
@testable import LedgerTestSupport
import Synchronization
import TestSupport
import Testing

@testable import Wallet

/// PIN verification values under versioned keys: software keys here, a SoftHSM2 token below.
@Suite struct PINVaultTests {
    static let key = Array("test-pepper-of-32-bytes-at-least".utf8)

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func scratch() throws -> String {
        let directory = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/pin-keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func aValueIsTheKeysHMACOfTheCustomerAndThePIN() async throws {
        let vault = PINVault(key: Self.key)
        let value = try await vault.value(for: "4826", customer: 7)
        let expected = HMAC<SHA256>.authenticationCode(
            for: [0, 0, 0, 0, 0, 0, 0, 7] + Array("4826".utf8), using: SymmetricKey(data: Self.key))
        #expect(value == "pvv1$1$" + Self.hex(Array(expected)))
        #expect(try await vault.check("4826", customer: 7, against: value) == .right(replacement: nil))
        #expect(try await vault.check("2581", customer: 7, against: value) == .wrong)
        #expect(try await vault.check("4826", customer: 8, against: value) == .wrong, "a value copied onto another customer verifies nothing")
        let other = PINVault(key: Array("another-key-of-32-bytes-or-more!".utf8))
        #expect(try await other.check("4826", customer: 7, against: value) == .wrong, "without the key the table is useless")
        // The seal has a key of its own: neither the PIN key's MAC of the same text nor another vault's seal.
        #expect(vault.seal("4826") == vault.seal("4826") && vault.seal("4826") != other.seal("4826"))
        #expect(vault.seal("4826") != Self.hex(Array(HMAC<SHA256>.authenticationCode(for: Array("4826".utf8), using: SymmetricKey(data: Self.key)))))
        await #expect(throws: PINKeyError.self) { try await vault.check("4826", customer: 7, against: "md5$abc") }
    }

    @Test func aRotatedKeyFileMovesAValueToTheNewVersionAtTheNextRightPIN() async throws {
        let path = try Self.scratch() + "/pin.keys"
        try SoftwarePINKeys.createIfMissing(file: path)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        let before = try PINVault(keys: SoftwarePINKeys(file: path))
        let old = try await before.value(for: "4826", customer: 42)
        let seal = before.seal("ussd-hop|s1|3|1")
        #expect(old.hasPrefix("pvv1$1$"))

        #expect(try SoftwarePINKeys(file: path).addVersion(importing: nil) == 2)
        let after = try PINVault(keys: SoftwarePINKeys(file: path))
        #expect(after.versions == [1, 2])
        guard case .right(let moved?) = try await after.check("4826", customer: 42, against: old) else {
            Issue.record("a right PIN under version 1 hands back its value under version 2")
            return
        }
        let newest = try await after.value(for: "4826", customer: 42)
        #expect(moved.hasPrefix("pvv1$2$") && moved == newest)
        #expect(try await after.check("1357", customer: 42, against: old) == .wrong)
        // A gateway that started before the rotation reads the file again when it meets version 2.
        #expect(try await before.check("4826", customer: 42, against: moved) == .right(replacement: nil))
        #expect(after.seal("ussd-hop|s1|3|1") == seal, "adding a version leaves sessions' sealed values valid")
    }

    /// Rotations at once (several operators, several processes) each add their own version; a key
    /// restored from its shares goes back under its number, never over a present one.
    @Test func concurrentRotationsLoseNoVersionAndARestoreKeepsItsNumber() throws {
        let path = try Self.scratch() + "/pin.keys"
        try SoftwarePINKeys.createIfMissing(file: path)
        try SoftwarePINKeys.createIfMissing(file: path)
        let added = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let version = try! SoftwarePINKeys(file: path).addVersion(importing: nil)
            added.withLock { $0.append(version) }
        }
        #expect(added.withLock { $0.sorted() } == Array(2...7))
        #expect(try SoftwarePINKeys(file: path).versions == Array(1...7))
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        let material = Array(repeating: UInt8(0x42), count: 32)
        #expect(try SoftwarePINKeys(file: path).addVersion(importing: material, as: 12) == 12)
        #expect(throws: PINKeyError.self) { try SoftwarePINKeys(file: path).addVersion(importing: material, as: 3) }
        #expect(try SoftwarePINKeys(file: path).versions == Array(1...7) + [12])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent).filter { $0 != "pin.keys" && $0 != "pin.keys.lock" }
        #expect(leftovers.isEmpty, "no temporary file is left behind: \(leftovers)")
    }

    @Test func keyFilesOthersCanReadOrThatAreMalformedAreRefused() throws {
        let directory = try Self.scratch()
        let path = directory + "/pin.keys"
        let line = "1 " + Self.hex(Self.key) + "\n"
        FileManager.default.createFile(atPath: path, contents: Data(line.utf8), attributes: [.posixPermissions: 0o644])
        #expect(throws: PINKeyError.self) { try SoftwarePINKeys(file: path) }
        chmod(path, 0o600)
        #expect(try SoftwarePINKeys(file: path).versions == [1])
        // A version the databases' INT cannot hold (or whose next would overflow) is refused here.
        for bad in ["1 abcd\n", line + line, "0 " + Self.hex(Self.key), "one " + Self.hex(Self.key), "# only a comment\n",
                    "\(Int.max) " + Self.hex(Self.key), "2147483648 " + Self.hex(Self.key)] {
            try bad.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o600)
            #expect(throws: PINKeyError.self, "\(bad.prefix(8))") { try SoftwarePINKeys(file: path) }
        }
        #expect(try SoftwarePINKeys(environment: "1:\(Self.hex(Self.key)),2:\(Self.hex(Array(Self.key.reversed())))").versions == [1, 2])
        #expect(try SoftwarePINKeys(environment: Self.hex(Self.key)).versions == [1])
        for bad in ["1:abcd", "zz", "1:\(Self.hex(Self.key)),1:\(Self.hex(Self.key))", "", "\(Int.max):\(Self.hex(Self.key))"] {
            #expect(throws: PINKeyError.self) { try SoftwarePINKeys(environment: bad) }
        }
        #expect(throws: PINKeyError.self) { try SoftwarePINKeys(environment: Self.hex(Self.key)).addVersion(importing: nil) }
        // Each checkout's development key is its own.
        let (first, second) = (directory + "/a/pin.keys", directory + "/b/pin.keys")
        try SoftwarePINKeys.createIfMissing(file: first)
        try SoftwarePINKeys.createIfMissing(file: second)
        #expect(try String(contentsOfFile: first, encoding: .utf8) != String(contentsOfFile: second, encoding: .utf8))
    }

    @Test func anScryptHashStillVerifiesOnceAndIsReplaced() async throws {
        let pepper = Array("a-legacy-pepper-of-some-length".utf8)
        let legacy = try PINVault.scryptHash("4826", pepper: pepper)
        let vault = PINVault(key: Self.key, legacyPepper: pepper)
        let value = try await vault.value(for: "4826", customer: 9)
        #expect(try await vault.check("4826", customer: 9, against: legacy) == .right(replacement: value))
        #expect(try await vault.check("1357", customer: 9, against: legacy) == .wrong)
        await #expect(throws: PINKeyError.self, "without PIN_PEPPER an scrypt hash cannot be checked") {
            try await PINVault(key: Self.key).check("4826", customer: 9, against: legacy)
        }
    }
}

/// Keys in a PKCS#11 token (SoftHSM2): made or imported non-extractable, the HMAC computed inside.
@Suite(.serialized) struct PKCS11KeyTests {
    func settings(label: String = "wallet-tests-\(UUID().uuidString.prefix(8))", pin: String = SoftHSM.userPIN) throws -> PKCS11Settings {
        PKCS11Settings(module: SoftHSM.module, slot: .tokenLabel(try SoftHSM.token().label), label: label, pin: pin)
    }

    @Test func theTokensHMACEqualsTheSoftwareOneUnderTheSameKey() async throws {
        try await SoftHSM.alone {
            let settings = try self.settings()
            let keys = try PKCS11PINKeys(settings)
            #expect(keys.versions.isEmpty)
            #expect(try keys.addVersion(importing: nil) == 1)
            let vault = try PINVault(keys: keys)
            let value = try await vault.value(for: "4826", customer: 5)
            #expect(value.hasPrefix("pvv1$1$"))
            #expect(try await vault.check("4826", customer: 5, against: value) == .right(replacement: nil))
            #expect(try await vault.check("4827", customer: 5, against: value) == .wrong)

            // A key made outside (and split into shares) and imported as version 2 gives, inside the
            // token, exactly the HMAC software computes with it.
            let material = (0..<32).map { UInt8($0 * 7 & 0xFF) }
            #expect(try keys.addVersion(importing: material) == 2)
            let inToken = try await PINVault(keys: keys).value(for: "4826", customer: 5)
            let inSoftware = try await PINVault(keys: SoftwarePINKeys(environment: "2:" + PINVaultTests.hex(material))).value(for: "4826", customer: 5)
            #expect(inToken == inSoftware && inToken.hasPrefix("pvv1$2$"))
            guard case .right(let moved?) = try await PINVault(keys: keys).check("4826", customer: 5, against: value) else {
                Issue.record("a value under version 1 moves to version 2")
                return
            }
            #expect(moved == inToken)

            // Another process's view of the token finds both versions.
            #expect(try PKCS11PINKeys(settings).versions == [1, 2])
        }
    }

    @Test func aWrongTokenPINOrLabelIsRefusedWithAReason() async throws {
        try await SoftHSM.alone {
            let wrongPIN = #expect(throws: PINKeyError.self) { try PKCS11PINKeys(self.settings(pin: "not-the-pin")) }
            #expect(wrongPIN?.description.contains("refused the user PIN") == true)
            #expect(wrongPIN?.description.contains("not-the-pin") == false)
            var noToken = try self.settings()
            noToken.slot = .tokenLabel("no-such-token")
            let missing = #expect(throws: PINKeyError.self) { try PKCS11PINKeys(noToken) }
            #expect(missing?.description.contains("no token with that label") == true)
            var noModule = try self.settings()
            noModule.module = "/nonexistent/libpkcs11.so"
            #expect(throws: PINKeyError.self) { try PKCS11PINKeys(noModule) }
        }
    }
}
