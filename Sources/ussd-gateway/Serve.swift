import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
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
            menus = try loadCheckedMenus(at: config.menusPath)
        } catch {
            FileHandle.standardError.write(Data("ussd-gateway: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let logger = Logger(label: "ussd.http")
        let app = try buildApplication(config: config, logger: logger, menus: menus)
        var groupConfiguration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = config.shutdownTimeout
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}
