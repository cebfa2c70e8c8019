import AfricasTalking
import Basics
import Curl
import GatewayActions
import GatewayHTTP
import Hummingbird
import Logging
import Menus
import MPesa
import MPesaGateway
import Postgres
import Redis
import Sandbox
import ServiceLifecycle
import SMSChannel
import USSDChannel
import Wallet

/// Refreshes the `ussd_active_sessions` gauge from Redis every ten seconds (every replica's
/// sessions, so each replica reports the same number).
struct USSDGauges: Service {
    let service: USSDService
    let logger: Logger

    func run() async throws {
        let gauge = self.service.metrics.gauge("ussd_active_sessions")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                gauge.record(try await self.service.activeSessions())
            } catch {
                self.logger.debug("active sessions not counted", metadata: ["error": .string(safeDescription(of: error))])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(10)) }
        }
    }
}
