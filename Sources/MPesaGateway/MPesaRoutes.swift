import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Logging
import Metrics
import MPesa
import NIOCore

/// Safaricom's callbacks: `POST /mpesa/stk/callback`, `/mpesa/b2c/result`, `/mpesa/b2c/timeout`,
/// `/mpesa/balance/result`, `/mpesa/balance/timeout`
/// (each with the callback token as one more segment when set). A well-formed callback gets
/// `{"ResultCode":0,"ResultDesc":"Accepted"}` even when it matched nothing (it is kept for review);
/// malformed JSON gets 400 with the reason logged. Bodies are never logged.
public struct MPesaRoutes: Sendable {
    /// Nil while M-Pesa is not configured: callbacks are then refused with 503.
    let service: MPesaService?
    let guardian: CallbackGuard
    let logger: Logger

    public init(service: MPesaService?, guardian: CallbackGuard, logger: Logger) {
        self.service = service
        self.guardian = guardian
        self.logger = logger
    }

    public func register(on router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/mpesa/stk/callback")) { request, context in
            try await self.handle(request, context, kind: "stk") { try await $0.stkCallback($1) }
        }
        router.post(self.guardian.paths("/mpesa/b2c/result")) { request, context in
            try await self.handle(request, context, kind: "b2c_result") { try await $0.b2cResult($1) }
        }
        router.post(self.guardian.paths("/mpesa/b2c/timeout")) { request, context in
            try await self.handle(request, context, kind: "b2c_timeout") { try await $0.b2cTimeout($1) }
        }
        // Account Balance answers: the float (the same token guards them).
        router.post(self.guardian.paths("/mpesa/balance/result")) { request, context in
            try await self.handle(request, context, kind: "balance_result") { try await $0.balanceResult($1) }
        }
        router.post(self.guardian.paths("/mpesa/balance/timeout")) { request, context in
            try await self.handle(request, context, kind: "balance_timeout") { try await $0.balanceTimeout($1) }
        }
    }

    private func handle(
        _ request: Request, _ context: GatewayRequestContext, kind: String,
        _ apply: @Sendable (MPesaService, [UInt8]) async throws -> MPesaService.CallbackOutcome
    ) async throws -> Response {
        try self.guardian.check(request, context)
        guard let service = self.service else {
            self.logger.warning("M-Pesa callback while M-Pesa is not configured", metadata: ["kind": .string(kind)])
            throw HTTPError(.serviceUnavailable)
        }
        let body = try await CallbackBody.bytes(request, logger: self.logger, route: "mpesa." + kind)
        do {
            let outcome = try await apply(service, body)
            service.metrics.count("mpesa_callbacks_total", [("kind", kind), ("outcome", outcome.rawValue)])
            self.logger.info("M-Pesa callback", metadata: ["kind": .string(kind), "outcome": .string(outcome.rawValue)])
            return Self.accepted
        } catch let malformed as STKCallback.Malformed {
            service.metrics.count("mpesa_callbacks_total", [("kind", kind), ("outcome", "malformed")])
            throw self.guardian.refuse(malformed.description, request, context, route: "mpesa." + kind)
        }
    }

    static var accepted: Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: #"{"ResultCode":0,"ResultDesc":"Accepted"}"#))
        )
    }
}
