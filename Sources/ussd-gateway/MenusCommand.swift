import ArgumentParser
import Curl
import Foundation
import GatewayActions
import Logging
import Menus
import Postgres
import ServiceLifecycle
import USSDGateway
import Wallet

struct MenusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "menus",
        abstract: "Check or draw a menus file.",
        subcommands: [Lint.self, Graph.self]
    )

    struct Lint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a menus file against the gateway's actions: exit 0 when clean, 1 with one `screen-id: problem` line each."
        )
        @Argument(help: "The menus file (default: MENUS_PATH or menus.json).") var path: String?

        func run() async throws {
            let path = self.path ?? ProcessInfo.processInfo.environment["MENUS_PATH"] ?? "menus.json"
            // Checked as serving checks it: in the deployment's currency and rail (CURRENCY,
            // CURRENCY_FRACTIONS, MOBILE_MONEY), the backends' env: references against
            // BACKEND_ENV_ALLOW and the gateway's own settings.
            let config: GatewayConfig
            do {
                config = try GatewayConfig.load(environment: ProcessInfo.processInfo.environment, serving: false)
            } catch {
                print("configuration error: \(error)")
                throw ExitCode(2)
            }
            let graph: MenuGraph
            do {
                graph = try MenuGraph.load(contentsOf: URL(fileURLWithPath: path), market: config.market)
            } catch {
                print(error)
                throw ExitCode(1)
            }
            let variables = config.backendVariables
            let problems = graph.lint(actions: ActionTable.specs, backendVariables: variables)
            for problem in problems { print(problem) }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }

    struct Graph: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the journeys as a Mermaid state diagram.")
        @Argument(help: "The menus file (default: MENUS_PATH or menus.json).") var path: String?
        @Option(help: "Language of the option labels.") var language: String?

        func run() async throws {
            let path = self.path ?? ProcessInfo.processInfo.environment["MENUS_PATH"] ?? "menus.json"
            do {
                print(try MenuGraph.load(contentsOf: URL(fileURLWithPath: path)).mermaid(language: self.language), terminator: "")
            } catch {
                FileHandle.standardError.write(Data("ussd-gateway: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
