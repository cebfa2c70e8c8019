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
            // The staff desk's limits, where the database's four-eyes checks read them.
            if try await wallet(config, postgres).applyLedgerSettings(dualApprovalAbove: config.wallet.ledgerDualApprovalAbove, adjustMax: config.wallet.ledgerAdjustMax) {
                logger.notice("ledger limits changed: recorded in the audit trail (action config.ledger)")
            }
            await postgres.shutdown()
        } catch {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: migrate failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
