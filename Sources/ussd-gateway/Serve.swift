import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Settings
import Wallet
import Menus
import USSDGateway

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the HTTP routes until SIGTERM or SIGINT.")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try self.options.load()
        bootstrapLogging(config)
        let menus: MenuGraph
        do {
            menus = try loadCheckedMenus(at: config.menusPath, hopDeadline: config.ussd.hopDeadline, backendVariables: config.backendVariables, market: config.market)
        } catch {
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let problem = config.backendTransportProblem(menus.document) {
            FileHandle.standardError.write(Data("ussd-gateway: configuration error: \(problem)\n".utf8))
            throw ExitCode(2)
        }
        let logger = Logger(label: "ussd.http")
        // The PIN keys, opened off the concurrency pool (a token's login blocks).
        let pins = try await blocking(doing: "refusing to start: PIN keys") { try config.openPINVault() }
        // Tiers into the database, the configuration into the audit trail when it changed. A
        // configuration the database refuses (a tier customers still hold) refuses the start; a
        // database not reachable yet does not (readiness reports it, and the configuration is
        // applied in the background as soon as the database answers).
        var retry: StartupConfigurationRetry?
        let postgres = PostgresClient(configuration: config.postgres, logger: Logger(label: "postgres"))
        var postgresTransport = config.postgres.declaredTransport
        do {
            if try await applyStartupConfiguration(config: config, menus: menus.document, wallet: wallet(config, postgres), logger: logger) {
                logger.notice("configuration changed since the last start: recorded in the audit trail (action config.applied)")
            }
            postgresTransport = (try? await postgres.transport()) ?? postgresTransport
            if let problem = try await pinKeyProblem(config: config, wallet: Wallet(postgres: postgres, pins: pins)) {
                // Development serves anyway (a database from before PIN keys: its customers' PINs
                // were hashed under a pepper no longer in the source, and need resetting).
                if config.environment == .development {
                    logger.warning("PIN keys and the database disagree: those customers cannot sign in", metadata: ["problem": .string(problem)])
                } else {
                    await postgres.shutdown()
                    FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(problem)\n".utf8))
                    throw ExitCode(2)
                }
            }
            await postgres.shutdown()
        } catch let error as ExitCode {
            throw error
        } catch let error as LedgerCurrencyMismatch {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        } catch let error as UnsafeDatabaseLogin {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        } catch let error as WalletError {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            await postgres.shutdown()
            logger.warning("configuration not applied to the database yet: retrying until it answers", metadata: ["error": "\(error)"])
            retry = StartupConfigurationRetry(config: config, menus: menus.document, logger: logger)
        }
        // Redis's TLS refused (an untrusted certificate) stops the start; unencrypted links warn.
        // The staff desk's own login must be a desk login (production refuses another).
        do {
            try await checkTransportSecurity(config: config, postgres: postgresTransport, logger: logger)
            try await checkDeskLogin(config: config, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let app: any Service
        do {
            app = try buildApplication(config: config, logger: logger, menus: menus, pins: pins)
        } catch let error as PINKeyError {
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: PIN keys: \(error)\n".utf8))
            throw ExitCode(2)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("ussd-gateway: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        // The PIN vault first: it starts before the server and stops after it, so no PIN check is cut off.
        let services: [any Service] = [pins, app] + (retry.map { [$0] } ?? [])
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = config.shutdownTimeout
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}
