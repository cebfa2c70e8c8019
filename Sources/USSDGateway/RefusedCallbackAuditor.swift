import Foundation
import GatewayHTTP
import GatewayTelemetry
import Logging
import ServiceLifecycle
import Wallet

/// Writes refused provider callbacks to the audit trail, at most `perMinute` rows a minute: a
/// flood of forged callbacks costs the database a bounded number of inserts, and the next row
/// written says how many were left out.
struct RefusedCallbackAuditor: Service {
    let refusals: CallbackRefusals
    let wallet: Wallet
    var perMinute = 60
    let metrics: MetricCache
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.drain() }
    }

    private func drain() async {
        var windowStart = ContinuousClock.now
        var written = 0
        var suppressed = 0
        for await refusal in self.refusals.refusals {
            let now = ContinuousClock.now
            if now - windowStart >= .seconds(60) {
                (windowStart, written) = (now, 0)
            }
            guard written < self.perMinute else {
                suppressed += 1
                self.metrics.count("callback_refusals_unaudited_total", [("route", refusal.route)])
                continue
            }
            written += 1
            do {
                try await self.wallet.recordRefusedCallback(
                    route: refusal.route, reason: refusal.reason, source: refusal.source, status: refusal.status, suppressed: suppressed
                )
                suppressed = 0
            } catch {
                self.logger.warning("refused callback not written to the audit trail", metadata: ["route": .string(refusal.route)])
            }
        }
    }
}
