import AfricasTalking
import Basics
import GatewayActions
import GatewayHTTP
import Hummingbird
import Logging
import NIOCore

/// Africa's Talking's SMS callbacks: `POST /sms/africastalking/inbound` (a message to our
/// shortcode) and `POST /sms/africastalking/delivery` (a delivery report), each with the callback
/// token as one more segment when set. Malformed forms are 400 with the reason logged; message
/// texts are never logged (they carry PINs).
public struct SMSRoutes: Sendable {
    let service: SMSService
    let guardian: CallbackGuard
    let logger: Logger

    public init(service: SMSService, guardian: CallbackGuard, logger: Logger) {
        self.service = service
        self.guardian = guardian
        self.logger = logger
    }

    public func register(on router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/sms/africastalking/inbound")) { request, context in try await self.inbound(request, context) }
        router.post(self.guardian.paths("/sms/africastalking/delivery")) { request, context in try await self.delivery(request, context) }
    }

    func inbound(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let message = try await self.decode(request, context, route: "sms.inbound", AfricasTalkingInboundSMS.init(form:))
        _ = try await self.service.receive(SMSService.Inbound(id: message.id, from: message.from, text: message.text))
        return Response(status: .ok)
    }

    func delivery(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let report = try await self.decode(request, context, route: "sms.delivery", AfricasTalkingDeliveryReport.init(form:))
        if try await !self.service.deliveryReport(report) {
            self.logger.notice("delivery report for a message we do not know", metadata: ["status": .string(report.known?.rawValue ?? "other")])
        }
        return Response(status: .ok)
    }

    /// A guarded callback's form, decoded; 400 with the reason logged when malformed.
    private func decode<Callback>(
        _ request: Request, _ context: GatewayRequestContext, route: String, _ decode: ([String: String]) throws(MalformedCallback) -> Callback
    ) async throws -> Callback {
        try self.guardian.check(request, context)
        let form = try await CallbackBody.form(request, logger: self.logger, route: route, guardian: self.guardian, context: context)
        do {
            return try decode(form)
        } catch {
            throw self.guardian.refuse(error.description, request, context, route: route)
        }
    }
}
