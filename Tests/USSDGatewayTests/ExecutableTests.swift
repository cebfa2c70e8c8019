import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
@testable import MPesaGateway
import Postgres
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway

@Suite struct ExecutableTests {
    func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["LOG_LEVEL"] = "warning"
        environment["ENVIRONMENT"] = "development"
        environment["MENUS_PATH"] = RepoFiles.menus
        return environment.merging(extra) { $1 }
    }

    @Test func migrateCreatesTheMigrationTableAndCanRunAgain() async throws {
        let database = try await TestServers.freshDatabase("migrate")
        for _ in 0..<2 {
            let child = try ChildProcess.start(GatewayBinary.path, ["migrate"], environment: self.environment(["DATABASE_URL": database.connectionString]))
            #expect(await child.wait() == 0, "migrate failed: \(child.errorOutput)")
        }
        let postgres = PostgresClient(configuration: database)
        let exists = try await postgres.query(
            "SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('transfers') IS NOT NULL AND to_regclass('outbox') IS NOT NULL"
        ).single()?.decode(Bool.self, column: 0)
        #expect(exists == true)
        let versions = try await postgres.query("SELECT version FROM schema_migrations ORDER BY version").map { try $0.decode(Int.self, column: 0) }
        let shipped = try GatewayMigrations.all().map(\.version)
        #expect(versions == shipped && versions.first == 1, "every shipped migration was applied once")
        await postgres.shutdown()
    }

    @Test func serveAnswersThenStopsGracefullyOnSIGTERM() async throws {
        let port = try await PrivateServer.freePort()
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: self.environment(["HTTP_PORT": String(port)]))
        let curl = CurlClient()
        let ready = try await waitUntilReady(curl, "http://127.0.0.1:\(port)/readyz")
        #expect(ready?.status == 200, "serve never became ready: \(server.errorOutput)")

        server.signal(SIGTERM)
        let status = await server.wait()
        #expect(status == 0, "serve exited \(status) on SIGTERM: \(server.errorOutput)")
        await #expect(throws: CurlError.self) { try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)/healthz", timeout: .seconds(2))) }
        await curl.shutdown()
    }

    /// `serve` writes menus.json's KYC tiers to the database and records the configuration in the
    /// audit trail when it changed; it refuses to start when a tier customers hold would vanish.
    @Test func serveAppliesTheTiersAuditsAChangedConfigurationAndRefusesToDropAHeldTier() async throws {
        let database = try await TestServers.freshDatabase("startup")
        let postgres = PostgresClient(configuration: database)
        try await postgres.migrate(try GatewayMigrations.all())
        func serve(_ extra: [String: String] = [:]) async throws -> (Int32, String) {
            let port = try await PrivateServer.freePort()
            let server = try ChildProcess.start(
                GatewayBinary.path, ["serve"], environment: self.environment(["HTTP_PORT": String(port), "DATABASE_URL": database.connectionString].merging(extra) { $1 })
            )
            let curl = CurlClient()
            let ready = try? await waitUntilReady(curl, "http://127.0.0.1:\(port)/readyz", process: server)
            await curl.shutdown()
            if ready?.status == 200 { server.signal(SIGTERM) }
            return (await server.wait(), server.errorOutput)
        }
        func applied() async throws -> Int {
            try await postgres.query("SELECT count(*) FROM audit_log WHERE action = 'config.applied'").single()!.decode(Int.self, column: 0)
        }
        #expect(try await serve().0 == 0)
        #expect(try await serve().0 == 0)
        #expect(try await applied() == 1, "the same configuration is recorded once")
        let tiers = try await postgres.query("SELECT name, max_balance, is_default FROM kyc_tiers ORDER BY name").map { try $0.decode((String, Int64?, Bool).self) }
        #expect(tiers.map(\.0) == ["basic", "standard"], "menus.json's tiers: \(tiers)")
        #expect(tiers[0].1 == 10_000_000 && !tiers[0].2 && tiers[1].1 == nil && tiers[1].2, "basic is capped; standard, the default, is not: \(tiers)")
        #expect(try await serve(["PIN_LOCK_MINUTES": "45"]).0 == 0)
        #expect(try await applied() == 2)
        let change = try await postgres.query(
            "SELECT before->>'pin.lock_minutes', after->>'pin.lock_minutes' FROM audit_log WHERE action = 'config.applied' ORDER BY id DESC LIMIT 1"
        ).single()!.decode((String, String).self)
        #expect(change == ("30", "45"))

        // A customer in tier `basic`, and a menus file without it: the start is refused.
        try await postgres.query("INSERT INTO customers (msisdn, name, pin_hash, tier) VALUES ('254712000999', 'Held', 'x', 'basic')")
        var menus = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: RepoFiles.menus))) as! [String: Any]
        var section = menus["tiers"] as! [String: Any]
        var levels = section["levels"] as! [String: Any]
        levels["basic"] = nil
        section["levels"] = levels
        menus["tiers"] = section
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("menus-\(UUID().uuidString).json").path
        try JSONSerialization.data(withJSONObject: menus).write(to: URL(fileURLWithPath: path))
        let (status, errors) = try await serve(["MENUS_PATH": path])
        #expect(status == 2 && errors.contains("tier basic is held by 1 customer(s)"), "\(status): \(errors)")
        #expect(try await postgres.query("SELECT count(*) FROM kyc_tiers").single()!.decode(Int.self, column: 0) == 2, "nothing changed")
        try? FileManager.default.removeItem(atPath: path)
        await postgres.shutdown()
    }

    /// Postgres down at start: `serve` starts anyway, and applies the configuration as soon as the
    /// database answers, not at the next restart.
    @Test func serveAppliesTheConfigurationOnceThePostgresItStartedWithoutComesUp() async throws {
        try await PrivateServer.with(.postgres) { database in
            let postgres = PostgresClient(configuration: database.postgresConfiguration)
            try await postgres.migrate(try GatewayMigrations.all())
            await postgres.shutdown()
            try await database.stop()
            let port = try await PrivateServer.freePort()
            let server = try ChildProcess.start(
                GatewayBinary.path, ["serve"],
                environment: self.environment(["HTTP_PORT": String(port), "DATABASE_URL": database.postgresConfiguration.connectionString])
            )
            let curl = CurlClient()
            var alive: CurlResponse?
            _ = try await eventually(within: .seconds(30), every: .milliseconds(50)) {
                alive = try? await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)/healthz", timeout: .seconds(2)))
                return alive?.status == 200
            }
            #expect(alive?.status == 200, "serve started without its database: \(server.errorOutput)")
            try await database.start()
            let again = PostgresClient(configuration: database.postgresConfiguration)
            var tiers: [String] = []
            _ = try await eventually(within: .seconds(20), every: .milliseconds(100)) {
                tiers = (try? await again.query("SELECT name FROM kyc_tiers ORDER BY name").map { try $0.decode(String.self, column: 0) }) ?? []
                return tiers == ["basic", "standard"]
            }
            #expect(tiers == ["basic", "standard"], "menus.json's tiers, applied once the database answered: \(server.errorOutput)")
            let applied = try await again.query("SELECT count(*) FROM audit_log WHERE action = 'config.applied'").single()!.decode(Int.self, column: 0)
            #expect(applied == 1)
            server.signal(SIGTERM)
            #expect(await server.wait() == 0, "\(server.errorOutput)")
            await again.shutdown()
            await curl.shutdown()
        }
    }

    /// `gateway-bench handsets --arrival-rates`: sessions arrive on their own schedule against a
    /// served gateway, every hop is answered, and the report names the highest rate under 100 ms
    /// (or that none was). No figure is asserted: only that the mode works.
    @Test func anOpenLoopWalksSessionsArrivingAtEachRateAndReportsTheBestOne() async throws {
        let database = try await TestServers.freshDatabase("open", suffix: "_bench")
        let bench = URL(fileURLWithPath: GatewayBinary.path).deletingLastPathComponent().appendingPathComponent("gateway-bench").path
        let environment = self.environment(["DATABASE_URL": database.connectionString, "USSD_RATE_LIMIT_PER_MINUTE": "0", "RESUME_WINDOW_SECONDS": "0"])
        try await ChildProcess.run(GatewayBinary.path, ["migrate"], environment: environment)
        try await ChildProcess.run(bench, ["seed", "--customers", "40"], environment: environment)
        let port = try await PrivateServer.freePort()
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment.merging(["HTTP_PORT": String(port)]) { $1 })
        let curl = CurlClient()
        #expect(try await waitUntilReady(curl, "http://127.0.0.1:\(port)/readyz")?.status == 200, "\(server.errorOutput)")
        await curl.shutdown()
        let output = try await ChildProcess.run(
            bench,
            ["handsets", "--url", "http://127.0.0.1:\(port)/ussd/africastalking", "--customers", "40", "--journeys", "mixed", "--arrival-rates", "4,8", "--seconds", "2"],
            environment: environment
        )
        server.signal(SIGTERM)
        _ = await server.wait()
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("open loop ") }.count == 2, "\(output)")
        #expect(lines.filter { $0.hasPrefix("open loop ") }.allSatisfy { $0.hasSuffix(", 0 without an answer or with the apology screen") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("highest rate with p99 under 100 ms: ") || $0 == "no rate kept p99 under 100 ms" }, "\(output)")
        let postgres = PostgresClient(configuration: database)
        let sum = try await postgres.query("SELECT coalesce(sum(balance), 0)::bigint FROM account_balances").single()!.decode(Int64.self, column: 0)
        #expect(sum == 0)
        await postgres.shutdown()
    }

    /// The benchmarks are not in the production binary, and they refuse a database not marked as
    /// a benchmark database (its name ends in `_bench`) before writing anything to it.
    @Test func benchmarksLiveApartAndWriteOnlyToABenchmarkDatabase() async throws {
        let gone = try ChildProcess.start(GatewayBinary.path, ["bench", "wallet"], environment: self.environment([:]))
        #expect(await gone.wait() != 0, "ussd-gateway has no bench command")
        let bench = URL(fileURLWithPath: GatewayBinary.path).deletingLastPathComponent().appendingPathComponent("gateway-bench").path
        let database = try await TestServers.freshDatabase("wallet")
        for target in ["wallet", "ussd"] {
            let refused = try ChildProcess.start(bench, [target, "--requests", "10"], environment: self.environment(["DATABASE_URL": database.connectionString]))
            #expect(await refused.wait() != 0)
            #expect(refused.errorOutput.contains("benchmarks write only to a database whose name ends in _bench"), "\(refused.errorOutput)")
        }
        let postgres = PostgresClient(configuration: database)
        let tables = try await postgres.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").single()!.decode(Int.self, column: 0)
        #expect(tables == 0, "nothing was written: not even the migrations")
        await postgres.shutdown()
    }
}
