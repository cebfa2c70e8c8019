import ArgumentParser
import Basics
import Foundation
import Logging
import Postgres
import USSDGateway
import Wallet

/// `ussd-gateway pin rotate-key` and `pin key-status`: the PIN keys' versions (SECURITY.md: PIN keys).
struct PINCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin", abstract: "The PIN keys: add a version, count the customers under each.", subcommands: [RotateKey.self, KeyStatus.self]
    )

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract:
                "Add the next PIN key version, in the key file (PIN_KEY_FILE) or the PKCS#11 token (PIN_PKCS11_*). New PIN values use it once the gateways restart; each customer's value moves to it at their next right PIN."
        )
        @OptionGroup var options: ConfigOptions
        @Option(
            name: .customLong("import"),
            help: "A file holding the new key as 64 or more hex digits, made outside the token and backed up as shares first; without it a random key is made (inside the token for PKCS#11)."
        )
        var importFile: String?
        @Option(
            name: .customLong("version"),
            help: "With --import: the version the key had, when restoring it from its shares into a new token (refused when present)."
        )
        var version: Int?

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            guard let source = config.pinKeys else { throw refusal("no PIN keys are configured: set PIN_KEY_FILE, or PIN_PKCS11_MODULE with its slot, label and PIN") }
            var material: [UInt8]?
            if let importFile {
                guard let text = try? String(contentsOfFile: importFile, encoding: .utf8),
                    let bytes = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count >= SoftwarePINKeys.minimumKeyBytes
                else { throw refusal("--import: \(importFile) must hold one key of 64 or more hex digits") }
                material = bytes
            }
            if self.version != nil && material == nil { throw refusal("--version restores an imported key: give --import too") }
            let (imported, requested) = (material, self.version)
            let (version, pins) = try await blocking(doing: "adding a PIN key") { () throws -> (Int, PINVault) in
                if config.pinKeyIsDevelopmentDefault, case .file(let path) = source { try SoftwarePINKeys.createIfMissing(file: path) }
                let keys = try source.open()
                let version = try keys.addVersion(importing: imported, as: requested)
                return (version, try PINVault(keys: keys, legacyPepper: nil))
            }
            print("added PIN key version \(version) to the \(source.summary)")
            // Its check value into the database, where every gateway compares its own keys with it.
            let postgres = PostgresClient(configuration: config.postgres, logger: Logger(label: "postgres"))
            do {
                let mismatched = try await Wallet(postgres: postgres, pins: pins).checkPINKeys()
                await postgres.shutdown()
                if !mismatched.isEmpty {
                    throw refusal(
                        "version(s) \(mismatched.map(String.init).joined(separator: ", ")) differ from the keys the database recorded: another host made its own; copy one host's keys to the others instead")
                }
            } catch let error as ExitCode {
                throw error
            } catch {
                await postgres.shutdown()
                print("the database did not answer: the gateways record the new version's check value when they start")
            }
            print("restart the gateways (one at a time) for new PIN values to use it; each customer's value moves to it at their next right PIN")
        }
    }

    struct KeyStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key-status",
            abstract: "Count the customers whose PIN value is under each key version (and those still on scrypt), next to the versions the keys hold. Exits 1 when a value names a key that is missing."
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            var present: [Int]?
            // Development's own key file is made by the first `serve`, not by counting.
            var developmentFileMissing = false
            if config.pinKeyIsDevelopmentDefault, case .file(let path)? = config.pinKeys { developmentFileMissing = !FileManager.default.fileExists(atPath: path) }
            if let source = config.pinKeys, !developmentFileMissing {
                present = try await blocking(doing: "reading the PIN keys") { try source.open().versions }
                print("PIN keys (\(source.summary)): versions \(present!.map(String.init).joined(separator: ", ")), newest \(present!.last!)")
            } else {
                print("PIN keys: not configured here (set PIN_KEY_FILE, PIN_KEY or PIN_PKCS11_*) to compare")
            }
            let rows = try await withPostgres(config, doing: "counting PIN values") { postgres in
                try await postgres.query("SELECT scheme, key_version, customers FROM ledger_pin_key_status()").map { row in
                    (try row.decode(String.self, column: 0), try row.decode(Int?.self, column: 1), try row.decode(Int64.self, column: 2))
                }
            }
            var missing = false
            print("customers by PIN value:")
            for (scheme, version, customers) in rows {
                switch (scheme, version) {
                case ("pvv1", let version?):
                    let absent = present.map { !$0.contains(version) } ?? false
                    missing = missing || absent
                    print("  key \(version): \(customers)" + (absent ? "  (NO SUCH KEY HERE: these customers cannot sign in)" : ""))
                case ("scrypt", _):
                    print("  scrypt (before PIN keys): \(customers)" + (config.pinPepper == nil ? "  (PIN_PEPPER must stay set until they have moved)" : ""))
                default:
                    print("  \(scheme.isEmpty ? "empty" : scheme): \(customers)")
                }
            }
            if rows.isEmpty { print("  none") }
            if missing { throw ExitCode(1) }
        }
    }
}

/// Runs a blocking call (a file, a PKCS#11 token) on a thread of its own, not on the concurrency
/// pool; a failure prints one line naming `what` and exits with code 1.
func blocking<T: Sendable>(doing what: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: Result { try body() }) }
    }
    switch result {
    case .success(let value): return value
    case .failure(let error as PINKeyError): throw refusal("\(what): \(error)")
    case .failure(let error): throw error
    }
}
