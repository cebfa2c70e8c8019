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
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations, then exit.")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try self.options.load()
        bootstrapLogging(config)
        let logger = Logger(label: "migrate")
        let postgres = PostgresClient(configuration: config.postgres, logger: logger)
        do {
            let migrations = try GatewayMigrations.all()
            let applied = try await postgres.migrate(migrations)
            logger.info("migrations done", metadata: ["applied": "\(applied.count)", "known": "\(migrations.count)"])
            await postgres.shutdown()
        } catch {
            await postgres.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: migrate failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
