import AfricasTalking
import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import HTTPTypes
import Hummingbird
import Logging
import Menus
import NIOCore
import Wallet

/// Africa's Talking's USSD routes: `POST /ussd/africastalking` (a hop) and
/// `POST /ussd/africastalking/events` (end of session), each with the callback token as one more
/// path segment when one is configured.
public struct USSDRoutes: Sendable {
    let service: USSDService
    let guardian: CallbackGuard
    let logger: Logger

    public init(service: USSDService, guardian: CallbackGuard, logger: Logger) {
        self.service = service
        self.guardian = guardian
        self.logger = logger
    }

    public func register(on router: Router<GatewayRequestContext>) {
        let hop = self.guardian.paths("/ussd/africastalking")
        let events = self.guardian.paths("/ussd/africastalking/events")
        router.post(hop) { request, context in try await self.hop(request, context) }
        router.post(events) { request, context in try await self.event(request, context) }
    }

    func hop(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let hop: USSDHop
        do {
            let form = try await CallbackBody.form(request, logger: context.logger, route: "ussd.hop", guardian: self.guardian, context: context)
            hop = try Self.decodeHop(form, serviceCodes: self.service.engine.graph.document.serviceCodes, plan: self.service.engine.plan)
        } catch let error as MalformedCallback {
            throw self.guardian.refuse(error.description, request, context, route: "ussd")
        }
        switch await self.service.handle(hop) {
        case .reply(let reply, let screen):
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
            // The hop's marker (the screen's id): Africa's Talking returns the session's markers in
            // the end-of-session event's `hopsMetadata`.
            if AfricasTalkingUSSDEvent.isMarker(Substring(screen)) { headers[.atHopMetadata] = screen }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: reply)))
        case .refused(let reason):
            throw self.guardian.refuse(reason, request, context, route: "ussd.hop")
        }
    }

    func event(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let event: AfricasTalkingUSSDEvent
        let msisdn: MSISDN
        do {
            event = try AfricasTalkingUSSDEvent(form: try await CallbackBody.form(request, logger: context.logger, route: "ussd.event", guardian: self.guardian, context: context))
            msisdn = try Self.msisdn(event.phoneNumber, plan: self.service.engine.plan)
        } catch let error as MalformedCallback {
            throw self.guardian.refuse(error.description, request, context, route: "ussd")
        }
        try await self.service.sessionEnded(
            sessionId: event.sessionID, msisdn: msisdn, status: event.status, screens: event.hopsMetadata, hops: event.hopsCount,
            durationInMillis: event.durationInMillis
        )
        return Response(status: .ok)
    }

    static func decodeHop(_ form: [String: String], serviceCodes: [String], plan: NumberingPlan) throws(MalformedCallback) -> USSDHop {
        let hop = try AfricasTalkingUSSDHop(form: form)
        return USSDHop(hop.canonical, msisdn: try Self.msisdn(hop.phoneNumber, plan: plan), serviceCodes: serviceCodes)
    }

    /// A number the deployment serves (`plan`, from `MSISDN_COUNTRIES`), from Africa's Talking's `+2547...`.
    static func msisdn(_ phone: String, plan: NumberingPlan) throws(MalformedCallback) -> MSISDN {
        guard let msisdn = MSISDN(parsing: phone, plan: plan) else {
            throw MalformedCallback("phoneNumber is not a mobile number of a country served")
        }
        return msisdn
    }
}

extension HTTPField.Name {
    /// Africa's Talking's per-hop marker header (at most 99 characters, no `|`).
    static let atHopMetadata = HTTPField.Name("at-ussd-hop-metadata")!
}
