import Postgres
import USSDGateway
import Wallet

/// Customers for `gateway-bench handsets`, funded and with the PIN the handsets type, under
/// the gateways' own PIN key, in a database marked as a benchmark database.
enum HandsetsSeed {
    static func run(_ config: GatewayConfig, customers: Int) async throws {
        var configuration = try BenchmarkDatabase.checked(config.postgres)
        configuration.statementTimeout = nil
        let postgres = PostgresClient(configuration: configuration)
        let pins = try config.openPINVault()
        do {
            try await WalletBenchmark.prepare(postgres, customers: customers, pins: pins, pin: USSDBenchmark.pin)
        } catch {
            await postgres.shutdown()
            throw error
        }
        await postgres.shutdown()
    }
}
