import ArgumentParser
import Basics
import Curl
import Foundation
import GatewayTelemetry
import Logging
import Menus
import Postgres
import ServiceLifecycle
import Settings
import USSDGateway
import Wallet

/// Options every subcommand shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "A file of KEY=VALUE lines; environment variables override it.")
    var config: String?

    /// Loads the configuration to serve with, or prints the one-line problem and exits with code 2.
    func load() throws -> GatewayConfig { try self.load(serving: true) }

    /// The configuration for a staff or operations command: it needs none of the serving secrets
    /// (PIN pepper, callback tokens, provider credentials), and reads none.
    func loadForStaff() throws -> GatewayConfig { try self.load(serving: false) }

    private func load(serving: Bool) throws -> GatewayConfig {
        do {
            let file = try self.config.map { path throws(ConfigError) in try GatewayConfig.readFile(at: path) } ?? [:]
            return try GatewayConfig.load(environment: ProcessInfo.processInfo.environment, file: file, serving: serving)
        } catch {
            FileHandle.standardError.write(Data("ussd-gateway: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

func bootstrapLogging(_ config: GatewayConfig) {
    let level = config.logLevel
    // Every line written inside a traced request names its trace (`trace_id`, ``HopTrace``).
    LoggingSystem.bootstrap(
        { label, provider in
            var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
            handler.logLevel = level
            return handler
        }, metadataProvider: HopTrace.metadataProvider
    )
}

func refusal(_ problem: String) -> ExitCode {
    FileHandle.standardError.write(Data("ussd-gateway: \(problem)\n".utf8))
    return ExitCode(2)
}

/// A number given on the command line, in any usual form (`0712345678`, `+254712345678`), of a
/// country the deployment serves.
func msisdnArgument(_ value: String, named name: String, plan: NumberingPlan) throws -> MSISDN {
    guard let msisdn = MSISDN(parsing: value, plan: plan) else {
        let countries = plan.countries.map(\.rawValue).joined(separator: ", ")
        throw refusal("\(name) must be a mobile number of a country served (\(countries)) such as 0712345678")
    }
    return msisdn
}

/// The wallet over `postgres`, as the gateway builds it. A staff command reads no PIN key and
/// checks no PIN: its wallet's vault has a random key of this process only, so a PIN value it made
/// would verify against nothing stored.
func wallet(_ config: GatewayConfig, _ postgres: PostgresClient, personalData: PersonalData? = nil) -> Wallet {
    Wallet(
        postgres: postgres, pins: PINVault(key: SoftwarePINKeys.randomKey()), pinResetCooldown: config.wallet.pinResetCooldown,
        personalData: personalData, logger: Logger(label: "wallet"))
}

/// Runs `body` with a wallet that can open and seal personal data (the personal-data keys and the
/// key store, `PERSONAL_DATA_KEY_FILE` and `PERSONAL_DATA_KEYS_URL`), shut down afterwards; a
/// failure prints one line naming `what` and exits with code 1.
func withPersonalWallet<T>(_ config: GatewayConfig, doing what: String, _ body: (Wallet) async throws -> T) async throws -> T {
    let personalData: PersonalData
    do {
        personalData = try config.openPersonalData()
    } catch {
        FileHandle.standardError.write(Data("ussd-gateway: \(what) failed: the personal-data keys: \(error)\n".utf8))
        throw ExitCode(1)
    }
    do {
        let result = try await withPostgres(config, doing: what) { try await body(wallet(config, $0, personalData: personalData)) }
        await personalData.store.shutdown()
        return result
    } catch {
        await personalData.store.shutdown()
        throw error
    }
}

/// Runs `body` with a Postgres client that is shut down afterwards; a failure prints one line
/// naming `what` and exits with code 1.
func withPostgres<T>(_ config: GatewayConfig, doing what: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
    let postgres = PostgresClient(configuration: config.postgres, logger: Logger(label: "postgres"))
    do {
        // Amounts typed and shown here are the ledger's: a shell without the deployment's CURRENCY
        // would read 500 shillings where the ledger counts francs. (A login that cannot read the
        // claim, or a ledger not migrated yet, has none to compare.)
        if let row = try? await postgres.query("SELECT code FROM ledger_currency").single(), let code = try? row.decode(String.self, column: 0),
            code != config.currency.code
        {
            throw LedgerCurrencyMismatch(ledger: code, configured: config.currency.code)
        }
        let result = try await body(postgres)
        await postgres.shutdown()
        return result
    } catch {
        await postgres.shutdown()
        FileHandle.standardError.write(Data("ussd-gateway: \(what) failed: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Why a member of staff changes something. Who they are is the database's to say: the command
/// connects as the person's own login (`DATABASE_URL`), in `ussd_operator` to ask and change, in
/// `ussd_approver` to decide; the audit trail records that login.
struct OperatorOptions: ParsableArguments {
    @Option(help: "Why (for the audit trail): how the caller was identified, the ticket, what was checked.") var reason: String

    /// The reason as an ``OperatorAction``, or exit code 2 naming the problem.
    func action() throws -> OperatorAction { try Self.action(reason: self.reason) }

    static func action(reason: String) throws -> OperatorAction {
        do {
            return try OperatorAction(reason: reason)
        } catch {
            throw refusal("--reason: \(error)")
        }
    }
}

/// An amount in the deployment's currency as typed (`500`, `1,250.50`), in minor units; exit code 2 otherwise.
func amountArgument(_ text: String, named name: String, in currency: Currency) throws -> Amount {
    guard let amount = Amount(typed: text, in: currency) else {
        throw refusal("\(name) must be an amount in \(currency.code) more than zero, e.g. 500" + (currency.minorUnits > 0 ? " or 1250.50" : ""))
    }
    return amount
}
