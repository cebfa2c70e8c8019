import Basics
import Foundation
@testable import GatewayTestSupport
import Postgres
import Synchronization
import Testing
import TestSupport
import Wallet

@testable import USSDGateway

/// The PIN hop of a journey under each source of PIN keys: a key file, a SoftHSM2 token (made by
/// the test), and scrypt hashes from before the keys; `pin rotate-key` and `pin key-status` run as
/// the operator runs them, as the `ussd-gateway` binary.
@Suite(.serialized) struct PINKeyJourneyTests {
    /// The binary's environment: production, no secret of the test process's own.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["PIN_PEPPER", "PIN_KEY", "PIN_KEY_FILE", "PIN_PKCS11_MODULE", "PIN_PKCS11_SLOT", "PIN_PKCS11_LABEL", "PIN_PKCS11_PIN"] {
            environment[name] = nil
        }
        environment["ENVIRONMENT"] = "production"
        environment["LOG_LEVEL"] = "warning"
        // No database unless the test names its own: `rotate-key` records a version's check value
        // where DATABASE_URL points, and the suite's shared database is no test's to write.
        environment["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"
        return environment.merging(extra) { $1 }
    }

    /// `pin key-status` as a reporting login (it reads no PIN value, only counts).
    static func keyStatus(_ harness: USSDHarness, _ keys: [String: String]) async throws -> String {
        let report = try await TestServers.login("report", in: "ussd_report", to: harness.postgres.configuration)
        return try await ChildProcess.run(
            GatewayBinary.path, ["pin", "key-status"], environment: Self.environment(keys.merging(["DATABASE_URL": report.connectionString]) { $1 }))
    }

    static func stored(_ harness: USSDHarness, _ msisdn: MSISDN) async throws -> String {
        try await harness.postgres.query("SELECT pin_hash FROM customers WHERE msisdn = \(msisdn.value)").single()!.decode(String.self, column: 0)
    }

    /// Balance by the shortcut: dial, PIN. The reply.
    static func balance(_ harness: USSDHarness, _ local: String, pin: String) async throws -> String {
        let reply = Mutex<String>("")
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            phone.serviceCode = "*384*96*1#"
            #expect(try await phone.dial() == "CON Enter your 4-digit PIN")
            let answer = try await phone.type(pin)
            reply.withLock { $0 = answer }
        }
        return reply.withLock { $0 }
    }

    static func scratch() throws -> String {
        let directory = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/pin-journey-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func underAKeyFileARotatedKeyTakesOverAtTheNextRightPIN() async throws {
        let path = try Self.scratch() + "/pin.keys"
        try SoftwarePINKeys.createIfMissing(file: path)
        let keys = ["PIN_KEY_FILE": path]
        let harness = try await USSDHarness.make { $0.pinKeys = .file(path: path) }
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng, shillings: 250)
        _ = try await harness.customer(freshLocal(), name: "Otieno", pin: TypedPINs.otieno)
        #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
        #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$1$"))

        let rotated = try await ChildProcess.run(
            GatewayBinary.path, ["pin", "rotate-key"], environment: Self.environment(keys.merging(["DATABASE_URL": harness.config.postgres.connectionString]) { $1 }))
        #expect(rotated.contains("added PIN key version 2") && !rotated.contains("did not answer"), "\(rotated)")
        #expect(try SoftwarePINKeys(file: path).versions == [1, 2])
        #expect(try await harness.postgres.query("SELECT count(*) FROM pin_key_versions WHERE version = 2").single()!.decode(Int64.self, column: 0) == 1)
        // The gateways restart onto the new version; a wrong PIN moves nothing, a right one moves the value.
        let restarted = try harness.restarted()
        #expect(try await Self.balance(restarted, local, pin: TypedPINs.wrong).contains("Wrong PIN"))
        #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$1$"))
        #expect(try await Self.balance(restarted, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
        #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$2$"))
        // A gateway still running on version 1 reads the file again when it meets version 2.
        #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))

        let status = try await Self.keyStatus(harness, keys)
        #expect(status.contains("versions 1, 2, newest 2") && status.contains("key 1: 1") && status.contains("key 2: 1"), "\(status)")
        await harness.finish()
    }

    @Test func underSoftHSM2TheHMACRunsInTheTokenAndRotationMovesTheValue() async throws {
        try await SoftHSM.alone {
            let token = try SoftHSM.token()
            let label = "journey-\(UUID().uuidString.prefix(8))"
            let keys = [
                "PIN_PKCS11_MODULE": SoftHSM.module, "PIN_PKCS11_SLOT": token.label, "PIN_PKCS11_LABEL": label, "PIN_PKCS11_PIN": SoftHSM.userPIN,
                "SOFTHSM2_CONF": token.configuration,
            ]
            // The first key is made inside the token by the operator's command: it never exists outside.
            let made = try await ChildProcess.run(GatewayBinary.path, ["pin", "rotate-key"], environment: Self.environment(keys))
            #expect(made.contains("added PIN key version 1"), "\(made)")
            let settings = PKCS11Settings(module: SoftHSM.module, slot: .tokenLabel(token.label), label: label, pin: SoftHSM.userPIN)
            let harness = try await USSDHarness.make { $0.pinKeys = .pkcs11(settings) }
            let local = freshLocal()
            let msisdn = try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng, shillings: 250)
            #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
            #expect(try await Self.balance(harness, local, pin: TypedPINs.wrong).contains("Wrong PIN"))
            #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$1$"))

            let rotated = try await ChildProcess.run(GatewayBinary.path, ["pin", "rotate-key"], environment: Self.environment(keys))
            #expect(rotated.contains("added PIN key version 2"), "\(rotated)")
            let restarted = try harness.restarted()
            #expect(try await Self.balance(restarted, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
            #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$2$"))
            let status = try await Self.keyStatus(harness, keys)
            #expect(status.contains("versions 1, 2, newest 2") && status.contains("key 2: 1") && !status.contains("key 1:"), "\(status)")
            await harness.finish()
        }
    }

    /// What `serve` checks against the database before it serves: every stored value's key is
    /// present, PIN_PEPPER while scrypt hashes remain, and each version is the key recorded for it.
    @Test func serveRefusesKeysTheDatabaseDisagreesWith() async throws {
        let harness = try await USSDHarness.make()
        _ = try await harness.customer(freshLocal(), name: "Achieng", pin: TypedPINs.achieng)
        let app = PostgresClient(configuration: harness.config.postgres)
        #expect(try await pinKeyProblem(config: harness.config, wallet: Wallet(postgres: app, pins: harness.pins)) == nil, "and the check value is recorded")
        #expect(try await harness.postgres.query("SELECT count(*) FROM pin_key_versions").single()!.decode(Int64.self, column: 0) == 1)

        // Another host's own "version 1".
        let other = PINVault(key: Array("a-different-key-of-32-bytes-long".utf8))
        let differs = try await pinKeyProblem(config: harness.config, wallet: Wallet(postgres: app, pins: other))
        #expect(differs?.contains("version 1 is not the key the database recorded") == true, "\(differs ?? "nil")")

        let moved = try await harness.customer(freshLocal(), name: "Otieno", pin: TypedPINs.otieno)
        try await harness.postgres.query("UPDATE customers SET pin_hash = 'pvv1$7$00' WHERE msisdn = \(moved.value)")
        let missing = try await pinKeyProblem(config: harness.config, wallet: Wallet(postgres: app, pins: harness.pins))
        #expect(missing?.contains("under key version 7, which these keys do not hold") == true, "\(missing ?? "nil")")
        let legacy = try PINVault.scryptHash(TypedPINs.otieno, pepper: Array("a-pepper-from-before-the-keys!!".utf8))
        try await harness.postgres.query("UPDATE customers SET pin_hash = \(legacy) WHERE msisdn = \(moved.value)")
        let pepper = try await pinKeyProblem(config: harness.config, wallet: Wallet(postgres: app, pins: harness.pins))
        #expect(pepper?.hasPrefix("PIN_PEPPER: 1 customer(s) still have PIN hashes from before PIN keys") == true, "\(pepper ?? "nil")")
        var withPepper = harness.config
        withPepper.pinPepper = Array("a-pepper-from-before-the-keys!!".utf8)
        #expect(try await pinKeyProblem(config: withPepper, wallet: Wallet(postgres: app, pins: harness.pins)) == nil)
        await app.shutdown()
        await harness.finish()
    }

    /// docs/runbooks/restore-pin-keys.md, walked: a key made outside the token and kept as shares
    /// is imported; the token is lost; the key, put together again, is imported into a new token
    /// under the version it had, and every customer's PIN verifies as before. A different key under
    /// that version is refused at start-up by its check value.
    @Test func aKeyRestoredFromItsSharesIntoANewTokenVerifiesEveryValue() async throws {
        try await SoftHSM.alone {
            let token = try SoftHSM.token()
            let directory = try Self.scratch()
            let keyFile = directory + "/key.hex"
            try (Array(repeating: "5e", count: 32).joined() + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
            func keys(_ label: String) -> [String: String] {
                ["PIN_PKCS11_MODULE": SoftHSM.module, "PIN_PKCS11_SLOT": token.label, "PIN_PKCS11_LABEL": label, "PIN_PKCS11_PIN": SoftHSM.userPIN,
                 "SOFTHSM2_CONF": token.configuration]
            }
            func settings(_ label: String) -> PKCS11Settings {
                PKCS11Settings(module: SoftHSM.module, slot: .tokenLabel(token.label), label: label, pin: SoftHSM.userPIN)
            }
            let (lost, restored, wrong) = ("lost-\(UUID().uuidString.prefix(8))", "restored-\(UUID().uuidString.prefix(8))", "wrong-\(UUID().uuidString.prefix(8))")
            let imported = try await ChildProcess.run(GatewayBinary.path, ["pin", "rotate-key", "--import", keyFile], environment: Self.environment(keys(lost)))
            #expect(imported.contains("added PIN key version 1"), "\(imported)")
            let harness = try await USSDHarness.make { $0.pinKeys = .pkcs11(settings(lost)) }
            let local = freshLocal()
            let msisdn = try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng, shillings: 250)
            #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
            let app = PostgresClient(configuration: harness.config.postgres)
            #expect(try await pinKeyProblem(config: harness.config, wallet: Wallet(postgres: app, pins: harness.pins)) == nil)

            // The token is gone. Its key, put together from the shares, goes into a new one as version 1.
            let back = try await ChildProcess.run(
                GatewayBinary.path, ["pin", "rotate-key", "--import", keyFile, "--version", "1"], environment: Self.environment(keys(restored)))
            #expect(back.contains("added PIN key version 1"), "\(back)")
            var config = harness.config
            config.pinKeys = .pkcs11(settings(restored))
            let pins = try config.openPINVault()
            let after = USSDHarness(config: config, postgres: harness.postgres, redis: harness.redis, pins: pins, wallet: Wallet(postgres: harness.postgres, pins: pins), graph: harness.graph, clock: harness.clock)
            #expect(try await pinKeyProblem(config: config, wallet: Wallet(postgres: app, pins: pins)) == nil)
            #expect(try await Self.balance(after, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
            #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$1$"))

            // Another key under the same number: refused before it could refuse every customer.
            try (Array(repeating: "a7", count: 32).joined() + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
            let refused = try ChildProcess.start(
                GatewayBinary.path, ["pin", "rotate-key", "--import", keyFile, "--version", "1"],
                environment: Self.environment(keys(wrong).merging(["DATABASE_URL": harness.config.postgres.connectionString]) { $1 }))
            #expect(await refused.wait() == 2)
            #expect(refused.errorOutput.contains("differ from the keys the database recorded"), "\(refused.errorOutput)")
            await app.shutdown()
            await harness.finish()
        }
    }

    @Test func anScryptHashFromBeforeMovesToTheKeyAtItsFirstRightPIN() async throws {
        let pepper = "a-pepper-from-before-the-keys!!"
        let harness = try await USSDHarness.make { $0.pinPepper = Array(pepper.utf8) }
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng, shillings: 250)
        _ = try await harness.customer(freshLocal(), name: "Otieno", pin: TypedPINs.otieno)
        let legacy = try PINVault.scryptHash(TypedPINs.achieng, pepper: Array(pepper.utf8))
        try await harness.postgres.query("UPDATE customers SET pin_hash = \(legacy) WHERE msisdn = \(msisdn.value)")
        let keys = ["PIN_KEY": USSDHarness.testPINKey]
        let before = try await Self.keyStatus(harness, keys)
        #expect(before.contains("scrypt (before PIN keys): 1") && before.contains("PIN_PEPPER must stay set") && before.contains("key 1: 1"), "\(before)")

        #expect(try await Self.balance(harness, local, pin: TypedPINs.wrong).contains("Wrong PIN"))
        #expect(try await Self.stored(harness, msisdn) == legacy, "a wrong PIN moves nothing")
        #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"))
        #expect(try await Self.stored(harness, msisdn).hasPrefix("pvv1$1$"))
        #expect(try await Self.balance(harness, local, pin: TypedPINs.achieng).hasPrefix("END Balance"), "and the value verifies from then on")
        let after = try await Self.keyStatus(harness, keys)
        #expect(!after.contains("scrypt") && after.contains("key 1: 2"), "\(after)")
        await harness.finish()
    }
}
