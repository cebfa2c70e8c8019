import ArgumentParser
import Foundation
import Logging
import Postgres
import USSDGateway
import Wallet

/// `ussd-gateway keys ...`: the personal-data keys (KEKs) and the data keys they wrap.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "The personal-data keys: which KEK versions wrap how many data keys; rotate, retire, destroy erased customers' keys.",
        subcommands: [Status.self, Rotate.self, Retire.self, Sweep.self, Seal.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The KEK versions present and how many data keys each wraps.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            try await withPersonalData(config, doing: "reading the key store") { personalData in
                let counts = try await personalData.keysByVersion()
                print("personal-data keys (KEK): \(config.personalDataKeys?.summary(variable: "PERSONAL_DATA_KEY") ?? "a key of this process") versions \(personalData.versions.map(String.init).joined(separator: ", "))")
                for version in Set(counts.keys).union(personalData.versions).sorted() {
                    let present = personalData.versions.contains(version) ? "" : " (MISSING from the key source: these cannot be opened)"
                    print("  version \(version): \(counts[version] ?? 0) data key(s)\(present)")
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Add the next KEK version (in the key file or the token; PERSONAL_DATA_KEY's by hand first, then --rewrap-only) and re-wrap every data key under it, in short batches, without touching the data they seal. Running gateways find the new version by themselves."
        )
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Only re-wrap under the newest version present (one added to PERSONAL_DATA_KEY by hand, or a rotation cut short).") var rewrapOnly = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            try await withPersonalData(config, doing: "rotating") { personalData in
                if self.rewrapOnly {
                    let count = try await personalData.rewrap()
                    print("re-wrapped \(count) data key(s) under KEK version \(personalData.versions.last ?? 0)")
                } else {
                    let (version, count) = try await personalData.rotate()
                    print("added KEK version \(version); re-wrapped \(count) data key(s) under it. Retire the old version with: keys retire <version>")
                }
            }
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove an old KEK version from the key file or the token, once no data key is wrapped under it (refused otherwise)."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The version to remove.") var version: Int

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            try await withPersonalData(config, doing: "retiring") { personalData in
                try await personalData.retire(version: self.version)
                print("retired KEK version \(self.version)")
            }
        }
    }

    struct Sweep: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy the data keys of erased customers that the key store still holds (an erasure approved where the key store could not be reached)."
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let destroyed = try await withPersonalWallet(config, doing: "destroying erased customers' keys") { try await $0.destroyErasedKeys() }
            print("destroyed \(destroyed) data key(s)")
        }
    }
}

extension KeysCommand {
    struct Seal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal what rows from before personal data was sealed still hold in clear (names, SMS texts), as the schema's owner; `migrate` does it when it has the personal-data key."
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            try await withPostgres(config, doing: "sealing") { try await sealInClear(config, $0, logger: Logger(label: "keys")) }
            print("nothing in clear remains")
        }
    }
}

/// Runs `body` with the personal-data keys over a client of the key store, shut down afterwards;
/// a failure prints one line naming `what` and exits with code 1.
func withPersonalData<T>(_ config: GatewayConfig, doing what: String, _ body: (PersonalData) async throws -> T) async throws -> T {
    do {
        let personalData = try config.openPersonalData()
        do {
            let result = try await body(personalData)
            await personalData.store.shutdown()
            return result
        } catch {
            await personalData.store.shutdown()
            throw error
        }
    } catch {
        FileHandle.standardError.write(Data("ussd-gateway: \(what) failed: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
