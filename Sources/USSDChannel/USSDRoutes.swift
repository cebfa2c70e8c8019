import AfricasTalking
import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import Logging
import Menus
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

    /// Served by the hop server (``HopRoutes``), in the channel pipeline.
    public func register(on hops: HopRoutes) {
        hops.add(.post, "/ussd/africastalking", guardian: self.guardian) { call in try await self.hop(call) }
        hops.add(.post, "/ussd/africastalking/events", guardian: self.guardian) { call in try await self.event(call) }
    }

    func hop(_ call: CallbackCall) async throws -> CallbackAnswer {
        let hop: USSDHop
        do {
            let form = try CallbackBody.form(call, guardian: self.guardian, route: "ussd.hop")
            hop = try Self.decodeHop(form, serviceCodes: self.service.engine.graph.document.serviceCodes, plan: self.service.engine.plan)
        } catch let error as MalformedCallback {
            throw self.guardian.refuse(error.description, call, route: "ussd")
        }
        switch await self.service.handle(hop) {
        case .reply(let reply, let screen):
            // The hop's marker (the screen's id): Africa's Talking returns the session's markers in
            // the end-of-session event's `hopsMetadata`.
            return .text(reply, headers: AfricasTalkingUSSDEvent.isMarker(Substring(screen)) ? [("at-ussd-hop-metadata", screen)] : [])
        case .refused(let reason):
            throw self.guardian.refuse(reason, call, route: "ussd.hop")
        }
    }

    func event(_ call: CallbackCall) async throws -> CallbackAnswer {
        let event: AfricasTalkingUSSDEvent
        let msisdn: MSISDN
        do {
            event = try AfricasTalkingUSSDEvent(form: try CallbackBody.form(call, guardian: self.guardian, route: "ussd.event"))
            msisdn = try Self.msisdn(event.phoneNumber, plan: self.service.engine.plan)
        } catch let error as MalformedCallback {
            throw self.guardian.refuse(error.description, call, route: "ussd")
        }
        try await self.service.sessionEnded(
            sessionId: event.sessionID, msisdn: msisdn, status: event.status, screens: event.hopsMetadata, hops: event.hopsCount,
            durationInMillis: event.durationInMillis
        )
        return CallbackAnswer()
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
