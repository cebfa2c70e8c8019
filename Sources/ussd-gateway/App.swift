import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Curl
import Wallet
import Menus
import USSDGateway

@main
struct USSDGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ussd-gateway",
        abstract: "USSD/SMS wallet gateway for Africa's Talking and M-Pesa.",
        subcommands: [Serve.self, Migrate.self, Simulate.self, MenusCommand.self, MPesaCommand.self, SMSCommand.self, CustomerCommand.self, Bench.self]
    )
}

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

private func bootstrapLogging(_ config: GatewayConfig) {
    let level = config.logLevel
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

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

struct MPesaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpesa", abstract: "M-Pesa operations: reconcile by hand, list callbacks kept for review.",
        subcommands: [Reconcile.self, Review.self]
    )

    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one reconciliation pass now (pending deposits, open payouts that are due) and print what changed."
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let missing = config.mpesa.missing(publicBaseURL: config.publicBaseURL)
            guard missing.isEmpty else {
                FileHandle.standardError.write(Data("ussd-gateway: M-Pesa is not configured (missing \(missing.joined(separator: ", ")))\n".utf8))
                throw ExitCode(2)
            }
            let changes = try await withPostgres(config, doing: "reconcile") { postgres in
                let http = CurlClient()
                let mpesa = MPesaService.make(config: config, wallet: wallet(config, postgres), http: http, logger: Logger(label: "mpesa"))!
                do {
                    let changes = try await mpesa.reconcile()
                    await http.shutdown()
                    return changes
                } catch {
                    await http.shutdown()
                    throw error
                }
            }
            print(changes.isEmpty ? "nothing to change" : changes.joined(separator: "\n"))
        }
    }

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List M-Pesa reports kept for a person, newest first: callbacks that matched nothing, conflicts (with the deposit or payout and both results), payouts the reconciler could not settle."
        )
        @OptionGroup var options: ConfigOptions
        @Option(help: "How many to list.") var limit = 50

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let items = try await withPostgres(config, doing: "review") { try await wallet(config, $0).reviewItems(limit: self.limit) }
            print(items.isEmpty ? "nothing to review" : items.map(Self.line).joined(separator: "\n"))
        }

        /// `#id  kind  reference  reason  [deposit N | payout ID]  [was: ...  now: ...]`, tab-separated.
        static func line(_ item: ReviewItem) -> String {
            var fields = ["#\(item.id)", item.kind, item.reference, item.reason]
            if let deposit = item.depositID { fields.append("deposit \(deposit)") }
            if let payout = item.payoutID { fields.append("payout \(payout)") }
            if let earlier = item.earlierResult { fields.append("was: " + earlier) }
            if let new = item.newResult { fields.append("now: " + new) }
            return fields.joined(separator: "\t")
        }
    }
}

/// A command line that cannot be used: one line on standard error, exit code 2.
private func refusal(_ problem: String) -> ExitCode {
    FileHandle.standardError.write(Data("ussd-gateway: \(problem)\n".utf8))
    return ExitCode(2)
}

/// A number given on the command line, in any usual Kenyan form (`0712345678`, `+254712345678`).
private func msisdnArgument(_ value: String, named name: String) throws -> MSISDN {
    guard let msisdn = Validator.normaliseMSISDN(value).flatMap(MSISDN.init) else {
        throw refusal("\(name) must be a Kenyan mobile number such as 0712345678")
    }
    return msisdn
}

/// The wallet over `postgres`, as the gateway builds it.
private func wallet(_ config: GatewayConfig, _ postgres: PostgresClient) -> Wallet {
    Wallet(postgres: postgres, pins: PINHasher(pepper: config.pinPepper, cost: config.pinHashCost), logger: Logger(label: "wallet"))
}

/// Runs `body` with a Postgres client that is shut down afterwards; a failure prints one line
/// naming `what` and exits with code 1.
private func withPostgres<T>(_ config: GatewayConfig, doing what: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
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

struct CustomerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "customer", abstract: "Customer support.", subcommands: [Unlock.self])

    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a customer's PIN lock (the third lock in a row lasts until an operator does this); logged with who and why."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The customer's number, in any usual Kenyan form.") var number: String
        @Option(name: .customLong("operator"), help: "Who is unlocking.") var operatorName: String
        @Option(help: "Why (for the log).") var reason: String

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.number, named: "the number")
            guard !self.operatorName.isEmpty, !self.reason.isEmpty else { throw refusal("--operator and --reason must not be empty") }
            let unlocked = try await withPostgres(config, doing: "unlocking") { try await wallet(config, $0).unlockPIN(msisdn) }
            guard unlocked else {
                FileHandle.standardError.write(Data("ussd-gateway: \(msisdn.value) is not registered\n".utf8))
                throw ExitCode(1)
            }
            Logger(label: "wallet").notice(
                "PIN unlocked by an operator", metadata: ["msisdn": .string(msisdn.value), "operator": .string(self.operatorName), "reason": .string(self.reason)]
            )
            print("unlocked \(msisdn.value)")
        }
    }
}

struct SMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sms", abstract: "SMS operations: queue a message, list the outbox.", subcommands: [Send.self, Outbox.self]
    )

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue an SMS; the gateway's sender delivers it (see `sms outbox`).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The recipient, in any usual Kenyan form (0712345678, +254712345678, ...).") var to: String
        @Option(help: "The message.") var text: String

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let msisdn = try msisdnArgument(self.to, named: "--to")
            guard !self.text.isEmpty, self.text.count <= 918 else { throw refusal("--text must be 1 to 918 characters (6 segments)") }
            let id = try await withPostgres(config, doing: "queueing") { try await SMSService.queue($0, to: msisdn, text: self.text) }
            print("queued as outbox #\(id) to \(msisdn.value)" + (config.sms.configuration == nil ? " (AT_USERNAME/AT_API_KEY unset here: a configured gateway sends it)" : ""))
        }
    }

    struct Outbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pending and failed messages, oldest first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "How many to list.") var limit = 50

        func run() async throws {
            let config = try self.options.load()
            bootstrapLogging(config)
            let lines = try await withPostgres(config, doing: "reading the outbox") { postgres in
                try await postgres.query(
                    """
                    SELECT id, status, attempts, recipient, template, coalesce(last_error, ''),
                        CASE WHEN status = 'pending' THEN to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z' ELSE '' END
                    FROM outbox WHERE status IN ('pending', 'failed') ORDER BY id LIMIT \(self.limit)
                    """
                ).map { row in
                    let (id, status, attempts, recipient, template, error, next) = try row.decode((Int64, String, Int32, String, String, String, String).self)
                    return "#\(id)\t\(status)\t\(attempts) attempts\t\(recipient)\t\(template)\t" + (status == "pending" ? "next \(next)" : error)
                }
            }
            print(lines.isEmpty ? "no pending or failed messages" : lines.joined(separator: "\n"))
        }
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure the Redis or Postgres client's throughput (use a release build).")

    enum Target: String, ExpressibleByArgument, CaseIterable { case redis, postgres, menus, wallet, ussd }

    @Argument(help: "redis, postgres, menus, wallet or ussd") var target: Target
    @Option(help: "menus: also write the generated 500-screen file here.") var writeGenerated: String?
    @Option(help: "Concurrent tasks.") var concurrency = 32
    @Option(help: "Operations in all (redis: per command).") var requests = 100_000
    @Option(help: "pgbench scale factor of the pgbench_accounts table (postgres).") var scale = 1
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try self.options.load()
        switch self.target {
        case .redis:
            for result in try await ClientBenchmark.redis(config.redis, concurrency: self.concurrency, requests: self.requests) {
                print(result)
            }
        case .postgres:
            print(try await ClientBenchmark.postgres(config.postgres, concurrency: self.concurrency, transactions: self.requests, scale: self.scale))
        case .wallet:
            for result in try await WalletBenchmark.run(config.postgres, concurrency: self.concurrency, sends: self.requests, deposits: self.requests / 2) {
                print(result)
            }
        case .ussd:
            let figures = try await USSDBenchmark.run(config, concurrency: self.concurrency, journeys: self.requests)
            for (index, figure) in figures.enumerated() {
                print(figure)
                if index % 2 == 1 { print(String(format: "  ratio to the floor just before: %.2f", figure.ratio(to: figures[index - 1]))) }
            }
        case .menus:
            let graph = try loadCheckedMenus(at: config.menusPath)
            _ = MenuBenchmark.engineSteps(graph: graph, journeys: 1000)
            let steps = MenuBenchmark.engineSteps(graph: graph, journeys: self.requests / 8)
            print(steps, String(format: "= %.2f microseconds per step", steps.seconds / Double(steps.operations) * 1e6))
            let generated = try MenuBenchmark.generatedMenus(groups: 125)
            if let path = self.writeGenerated { try generated.write(to: URL(fileURLWithPath: path)) }
            let (milliseconds, problems) = try MenuBenchmark.loadAndLint(generated, runs: 21)
            print(String(format: "menus load+lint of 501 screens (%d bytes): median of 21 runs %.2f ms, %d problems", generated.count, milliseconds, problems))
        }
    }
}

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
            let graph: MenuGraph
            do {
                graph = try MenuGraph.load(contentsOf: URL(fileURLWithPath: path))
            } catch {
                print(error)
                throw ExitCode(1)
            }
            let problems = graph.lint(actions: ActionRegistry.all)
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
