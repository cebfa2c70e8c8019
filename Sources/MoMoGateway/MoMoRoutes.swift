import Basics
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Logging
import MoMo
import NIOCore

/// MoMo's callbacks: `PUT` or `POST` `/momo/callback[/<token>]/<reference>`, the request's own
/// `X-Reference-Id` last (the client puts it in each request's `X-Callback-Url`). The body is
/// checked and then only prompts a status query (``MoMoService/callback(reference:body:)``).
public struct MoMoRoutes: Sendable {
    public static let callbackPath = "/momo/callback"
    let service: MoMoService?
    let guardian: CallbackGuard
    let logger: Logger

    public init(service: MoMoService?, guardian: CallbackGuard, logger: Logger) {
        self.service = service
        self.guardian = guardian
        self.logger = logger
    }

    public func register(on router: Router<GatewayRequestContext>) {
        let path = self.guardian.paths(Self.callbackPath, then: "/:reference")
        router.put(path) { request, context in try await self.handle(request, context) }
        router.post(path) { request, context in try await self.handle(request, context) }
    }

    private func handle(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        guard let service = self.service else {
            self.logger.warning("MoMo callback while MoMo is not configured")
            throw HTTPError(.serviceUnavailable)
        }
        let route = "momo.callback"
        guard let reference = context.parameters.get("reference").flatMap({ MoMoReference(uuid: $0) }) else {
            service.metrics.count("momo_callbacks_total", [("outcome", "malformed")])
            throw self.guardian.refuse("the callback's path names no reference", request, context, route: route)
        }
        let body = try await CallbackBody.bytes(request, logger: self.logger, route: route)
        do {
            let outcome = try await service.callback(reference: reference, body: body)
            service.metrics.count("momo_callbacks_total", [("outcome", outcome)])
            self.logger.info("MoMo callback", metadata: ["outcome": .string(outcome)])
            return Response(status: .ok)
        } catch let malformed as MoMoCallbackMalformed {
            service.metrics.count("momo_callbacks_total", [("outcome", "malformed")])
            throw self.guardian.refuse(malformed.description, request, context, route: route)
        } catch {
            // MoMo could not be asked: the reconciler asks later. MoMo is told to try again.
            service.metrics.count("momo_callbacks_total", [("outcome", "unsettled")])
            self.logger.warning("MoMo callback not settled yet", metadata: ["error": .string(safeDescription(of: error))])
            throw HTTPError(.serviceUnavailable)
        }
    }
}
