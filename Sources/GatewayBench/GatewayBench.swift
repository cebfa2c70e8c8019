import ArgumentParser
import Foundation
import GatewayActions
import Settings
import USSDGateway
import Wallet

/// `gateway-bench`: the benchmarks, in an executable of their own so the production binary
/// carries none of them (and none of the data they seed).
@main
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-bench",
        abstract: "Measure the clients, the menu engine, the wallet and USSD hops (use a release build).",
        discussion: "wallet and ussd write only to a database they created themselves, or to one whose name ends in _bench."
    )

    enum Target: String, ExpressibleByArgument, CaseIterable { case redis, postgres, menus, wallet, ussd, seed, handsets }

    @Argument(help: "redis, postgres, menus, wallet, ussd; seed (customers for handsets), handsets (journeys against --url)") var target: Target
    @Option(help: "handsets: the USSD route to walk (a balancer in front of replicas).") var url: String?
    @Option(help: "handsets: how long to walk, in seconds.") var seconds = 30
    @Option(help: "seed, handsets: how many customers.") var customers = 2_000
    @Option(help: "handsets: mixed (sends, balances, refused sends), menu, balance or send.") var journeys = "mixed"
    @Option(help: "handsets: write what each handset was told, as JSON lines, to this file.") var outcomes: String?
    @Option(
        help: "handsets: an open loop instead: sessions start as a Poisson process at each of these rates (sessions/s, comma-separated), --seconds each."
    ) var arrivalRates: String?
    @Option(help: "menus: also write the generated 500-screen file here.") var writeGenerated: String?
    @Option(help: "Concurrent tasks.") var concurrency = 32
    @Option(help: "Operations in all (redis: per command).") var requests = 100_000
    @Option(help: "wallet: group-commit lanes (batches in flight at once).") var lanes = Wallet.GroupCommit().lanes
    @Option(help: "wallet: most movements in one group-commit batch (1: off).") var batch = Wallet.GroupCommit().maximumBatch
    @Option(help: "pgbench scale factor of the pgbench_accounts table (postgres).") var scale = 1
    @Option(name: .long, help: "A file of KEY=VALUE lines; environment variables override it.") var config: String?

    func run() async throws {
        let file = try self.config.map { path throws(ConfigError) in try GatewayConfig.readFile(at: path) } ?? [:]
        var environment = ProcessInfo.processInfo.environment
        // Benchmarks run against throwaway servers; the development defaults are right there.
        if environment["ENVIRONMENT"] == nil { environment["ENVIRONMENT"] = "development" }
        let config = try GatewayConfig.load(environment: environment, file: file)
        switch self.target {
        case .redis:
            for result in try await ClientBenchmark.redis(config.redis, concurrency: self.concurrency, requests: self.requests) {
                print(result)
            }
        case .postgres:
            print(try await ClientBenchmark.postgres(config.postgres, concurrency: self.concurrency, transactions: self.requests, scale: self.scale))
        case .wallet:
            for result in try await WalletBenchmark.run(
                config.postgres, concurrency: self.concurrency, sends: self.requests, deposits: self.requests / 2,
                groupCommit: Wallet.GroupCommit(lanes: self.lanes, maximumBatch: self.batch)
            ) {
                print(result)
            }
        case .ussd:
            let figures = try await USSDBenchmark.run(config, concurrency: self.concurrency, journeys: self.requests)
            for (index, figure) in figures.enumerated() {
                print(figure)
                if index % 2 == 1 { print(String(format: "  ratio to the floor just before: %.2f", figure.ratio(to: figures[index - 1]))) }
            }
        case .seed:
            try await HandsetsSeed.run(config, customers: self.customers)
            print("seeded \(self.customers) customers")
        case .handsets:
            guard let url = self.url else { throw ValidationError("handsets needs --url") }
            guard let mix = HandsetsBenchmark.Mix(rawValue: self.journeys) else {
                throw ValidationError("--journeys is one of " + HandsetsBenchmark.Mix.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if let rates = self.arrivalRates {
                let parsed = rates.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !parsed.isEmpty, parsed.count == rates.split(separator: ",").count, parsed.allSatisfy({ $0 > 0 && $0 <= 100_000 }) else {
                    throw ValidationError("--arrival-rates is a comma-separated list of sessions per second, e.g. 50,100,200")
                }
                var figures: [OpenLoopBenchmark.Figure] = []
                for rate in parsed {
                    let figure = await OpenLoopBenchmark.run(url: url, rate: rate, duration: .seconds(self.seconds), customers: self.customers, mix: mix)
                    print(figure)
                    figures.append(figure)
                }
                if let best = OpenLoopBenchmark.highestRate(figures, under: 0.1) {
                    print(String(format: "highest rate with p99 under 100 ms: %.0f sessions/s (%.0f hops/s)", best.rate, Double(best.hops) / best.seconds))
                } else {
                    print("no rate kept p99 under 100 ms")
                }
                return
            }
            let result = try await HandsetsBenchmark.run(
                url: url, concurrency: self.concurrency, duration: .seconds(self.seconds), customers: self.customers, mix: mix
            )
            print(result.figure)
            print("retried hops: \(result.retries)")
            print("journeys ended by the apology screen: \(result.apologies)")
            print("hops never answered: \(result.unanswered)")
            for told in ["sent", "refused", "unknown"] {
                print("told \(told): \(result.outcomes.filter { $0.told == told }.count)")
            }
            if let path = self.outcomes {
                let encoder = JSONEncoder()
                let lines = try result.outcomes.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
                try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            }
        case .menus:
            let graph = try loadCheckedMenus(at: config.menusPath, market: config.market)
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
