import AfricasTalking
import Basics
import Curl
import GatewayTelemetry
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MPesa
import MPesaBook
@testable import MPesaGateway
import Menus
@testable import SMSChannel
import Sandbox
import Settings
import TestSupport
import Testing
@testable import USSDChannel
@testable import USSDGateway
import Wallet

extension USSDHarness {
    /// Serves the gateway on `config.httpPort` (as `serve` does, a real listener the sandbox calls
    /// back), runs `body` with its base URL, stops it, then checks that no typed PIN reached the logs.
    func serve(
        metrics: MetricCache = GatewayMetrics.serving, _ body: @Sendable (String) async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let (ready, signal) = AsyncStream<Int>.makeStream()
        let app = try buildApplication(config: self.config, logger: self.capture.logger, menus: self.graph, onServerRunning: { signal.yield($0) }, metrics: metrics)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ready.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        do {
            try await body("http://127.0.0.1:\(port)")
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
        task.cancel()
        _ = try? await task.value
        self.expectNoTypedPINInLogs(sourceLocation: sourceLocation)
    }
}
