import Hummingbird
import Logging
import NIOCore

/// Africa's Talking's SMS callbacks: `POST /sms/africastalking/inbound` (a message to our
/// shortcode) and `POST /sms/africastalking/delivery` (a delivery report), each with the callback
/// token as one more segment when set. Malformed forms are 400 with the reason logged; message
/// texts are never logged (they carry PINs).
struct SMSRoutes {
    let service: SMSService
    let guardian: CallbackGuard
    let logger: Logger

    func register(on router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/sms/africastalking/inbound")) { request, context in try await self.inbound(request, context) }
        router.post(self.guardian.paths("/sms/africastalking/delivery")) { request, context in try await self.delivery(request, context) }
    }

    func inbound(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let form = try await self.form(request)
        guard let id = form["id"], !id.isEmpty, id.utf8.count <= 100 else { throw self.bad("inbound SMS without a usable id") }
        guard let from = form["from"], !from.isEmpty else { throw self.bad("inbound SMS without from") }
        guard let text = form["text"] else { throw self.bad("inbound SMS without text") }
        _ = try await self.service.receive(SMSService.Inbound(id: id, from: from, text: text))
        return Response(status: .ok)
    }

    func delivery(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let form = try await self.form(request)
        guard let id = form["id"], !id.isEmpty else { throw self.bad("delivery report without id") }
        guard let status = form["status"], !status.isEmpty, status.utf8.count <= 40 else { throw self.bad("delivery report without status") }
        let reason = form["failureReason"].flatMap { $0.isEmpty ? nil : String($0.prefix(100)) }
        if try await !self.service.deliveryReport(messageID: id, status: status, failureReason: reason) {
            self.logger.notice("delivery report for a message we do not know", metadata: ["status": .string(status)])
        }
        return Response(status: .ok)
    }

    private func form(_ request: Request) async throws -> [String: String] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: USSDRoutes.maximumBody)
        } catch {
            self.logger.warning("SMS callback over 64 KiB")
            throw HTTPError(.contentTooLarge)
        }
        do {
            return try USSDRoutes.parseForm(String(buffer: buffer))
        } catch let error as BadCallback {
            throw self.bad(error.reason)
        }
    }

    private func bad(_ reason: String) -> BadCallback {
        self.logger.warning("bad SMS callback", metadata: ["reason": .string(reason)])
        return BadCallback(reason: reason)
    }
}
