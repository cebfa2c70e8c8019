import AfricasTalking
import Basics
import GatewayActions
import GatewayHTTP
import Logging

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

    /// Served by the hop server (``HopRoutes``), in the channel pipeline.
    public func register(on hops: HopRoutes) {
        hops.add(.post, "/sms/africastalking/inbound", guardian: self.guardian) { call in try await self.inbound(call) }
        hops.add(.post, "/sms/africastalking/delivery", guardian: self.guardian) { call in try await self.delivery(call) }
    }

    func inbound(_ call: CallbackCall) async throws -> CallbackAnswer {
        let message = try self.decode(call, route: "sms.inbound", AfricasTalkingInboundSMS.init(form:))
        _ = try await self.service.receive(SMSService.Inbound(id: message.id, from: message.from, text: message.text))
        return CallbackAnswer()
    }

    func delivery(_ call: CallbackCall) async throws -> CallbackAnswer {
        let report = try self.decode(call, route: "sms.delivery", AfricasTalkingDeliveryReport.init(form:))
        // A report can overtake the write of the messageId it names (the provider reports as soon
        // as it answers the send; the outbox row learns the id just after): while a message is
        // being sent, an unknown id is looked for again, for up to ten seconds.
        for attempt in 0..<25 {
            if attempt > 0 {
                guard try await self.service.sendingNow() else { break }
                try await Task.sleep(for: .milliseconds(400))
            }
            if try await self.service.deliveryReport(report, counted: attempt == 0) { return CallbackAnswer() }
        }
        self.logger.notice("delivery report for a message we do not know", metadata: ["status": .string(report.known?.rawValue ?? "other")])
        return CallbackAnswer()
    }

    /// A guarded callback's form, decoded; 400 with the reason logged when malformed.
    private func decode<Callback>(_ call: CallbackCall, route: String, _ decode: ([String: String]) throws(MalformedCallback) -> Callback) throws -> Callback {
        let form = try CallbackBody.form(call, guardian: self.guardian, route: route)
        do {
            return try decode(form)
        } catch {
            throw self.guardian.refuse(error.description, call, route: route)
        }
    }
}
