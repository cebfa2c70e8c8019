import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
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
        environment["MENUS_PATH"] = MenusCommandTests.repoMenus
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
