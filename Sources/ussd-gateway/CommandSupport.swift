import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

/// Options every subcommand shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "A file of KEY=VALUE lines; environment variables override it.")
    var config: String?

    /// Loads the configuration, or prints the one-line problem and exits with code 2.
    func load() throws -> GatewayConfig {
        do {
            let file = try self.config.map { path throws(ConfigError) in try GatewayConfig.readFile(at: path) } ?? [:]
            return try GatewayConfig.load(environment: ProcessInfo.processInfo.environment, file: file)
        } catch {
            FileHandle.standardError.write(Data("ussd-gateway: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

func bootstrapLogging(_ config: GatewayConfig) {
    let level = config.logLevel
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

func refusal(_ problem: String) -> ExitCode {
    FileHandle.standardError.write(Data("ussd-gateway: \(problem)\n".utf8))
    return ExitCode(2)
}

/// A number given on the command line, in any usual Kenyan form (`0712345678`, `+254712345678`).
func msisdnArgument(_ value: String, named name: String) throws -> MSISDN {
    guard let msisdn = MSISDN(parsing: value) else {
        throw refusal("\(name) must be a Kenyan mobile number such as 0712345678")
    }
    return msisdn
}

/// The wallet over `postgres`, as the gateway builds it.
func wallet(_ config: GatewayConfig, _ postgres: PostgresClient) -> Wallet {
    Wallet(postgres: postgres, pins: PINHasher(pepper: config.pinPepper, cost: config.pinHashCost), logger: Logger(label: "wallet"))
}

/// Runs `body` with a Postgres client that is shut down afterwards; a failure prints one line
/// naming `what` and exits with code 1.
func withPostgres<T>(_ config: GatewayConfig, doing what: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
    let postgres = PostgresClient(configuration: config.postgres, logger: Logger(label: "postgres"))
    do {
        let result = try await body(postgres)
        await postgres.shutdown()
        return result
    } catch {
        await postgres.shutdown()
        FileHandle.standardError.write(Data("ussd-gateway: \(what) failed: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
