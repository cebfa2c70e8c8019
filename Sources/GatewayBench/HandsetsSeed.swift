import Postgres
import USSDGateway
import Wallet

/// Customers for `gateway-bench handsets`, funded and with the PIN the handsets type, hashed with
/// the gateways' own pepper, in a database marked as a benchmark database.
enum HandsetsSeed {
    static func run(_ config: GatewayConfig, customers: Int) async throws {
        var configuration = try BenchmarkDatabase.checked(config.postgres)
        configuration.statementTimeout = nil
        let postgres = PostgresClient(configuration: configuration)
        let hash = try await PINHasher(pepper: config.pinPepper, cost: config.pinHashCost).hash(USSDBenchmark.pin)
        do {
            try await WalletBenchmark.prepare(postgres, customers: customers, pinHash: hash)
        } catch {
            await postgres.shutdown()
            throw error
        }
        await postgres.shutdown()
    }
}
