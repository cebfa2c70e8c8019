import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations as the schema's owner (creating the group roles ussd_app, ussd_report, ussd_operator, ussd_approver), write the ledger limits, then exit.")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try self.options.loadForStaff()
        bootstrapLogging(config)
        let logger = Logger(label: "migrate")
        let postgres = PostgresClient(configuration: config.postgres, logger: logger)
        do {
            let migrations = try GatewayMigrations.all()
            let applied = try await postgres.migrate(migrations)
            logger.info("migrations done", metadata: ["applied": "\(applied.count)", "known": "\(migrations.count)"])
            // The ledger's one currency: claimed before anything moves, or checked (the limits
            // below are written in its minor units).
            try await wallet(config, postgres).claimCurrency(config.currency)
            // The staff desk's limits, where the database's four-eyes checks read them.
            if try await wallet(config, postgres).applyLedgerSettings(dualApprovalAbove: config.wallet.ledgerDualApprovalAbove, adjustMax: config.wallet.ledgerAdjustMax) {
                logger.notice("ledger limits changed: recorded in the audit trail (action config.ledger)")
            }
            // The key store's database (made when missing) and schema; then anything still in clear
            // sealed, when this configuration holds the personal-data key (`keys seal` otherwise).
            if config.personalDataStore != nil || config.environment == .development {
                try await GatewayConfig.prepareKeyStore(config.keyStoreConfiguration, creating: true, logger: logger)
            } else {
                logger.warning("PERSONAL_DATA_KEYS_URL is not set: the key store's schema was not migrated (the gateway refuses to serve without it)")
            }
            if config.personalDataKeys != nil || config.environment == .development {
                try await sealInClear(config, postgres, logger: logger)
            } else if let clear = try await Wallet.clearPersonalValues(postgres), clear > 0 {
                logger.warning("personal data in clear remains: `ussd-gateway keys seal` with the personal-data key seals it", metadata: ["values": "\(clear)"])
            }
            await postgres.shutdown()
        } catch {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: migrate failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Seals what rows from before migration 0020 hold in clear (the schema's owner's `DATABASE_URL`,
/// the personal-data key and the key store).
func sealInClear(_ config: GatewayConfig, _ postgres: PostgresClient, logger: Logger) async throws {
    let personalData = try config.openPersonalData(logger: logger)
    do {
        let sealed = try await wallet(config, postgres, personalData: personalData).sealClearPersonalData()
        if sealed > 0 { logger.notice("personal data sealed", metadata: ["values": "\(sealed)"]) }
        await personalData.store.shutdown()
    } catch {
        await personalData.store.shutdown()
        throw error
    }
}
