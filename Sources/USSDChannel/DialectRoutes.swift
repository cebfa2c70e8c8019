import AfricasTalking
import Basics
import Crypto
import Foundation
import GatewayHTTP
import GatewayTelemetry
import HTTPTypes
import Hummingbird
import Logging
import Menus
import NIOCore
import USSDDialects
import Wallet

/// The USSD routes of the aggregators other than Africa's Talking, under the same callback guard
/// (token path segment, allowed addresses, body limit):
///
/// - `POST /ussd/hubtel`: Hubtel Programmable Services, JSON;
/// - `POST /ussd/nalo`: Nalo, JSON;
/// - `POST /ussd/arkesel`: Arkesel, JSON;
/// - `GET /ussd/flares`: Comviva Flares HTTP pull (Airtel), query in, plain text and `Freeflow` out.
///
/// Each decodes its dialect into a ``CanonicalHop`` (`USSDDialects`), hands it to the one
/// ``USSDService`` as a latest-input ``USSDHop``, and renders the answer back in the dialect.
/// Sessions are keyed `<provider>-<session id>`, so two aggregators' ids never meet. An
/// end-of-session or timeout notice (Hubtel's `Release` and `Timeout`, Flares' clean-up) closes the
/// session as Africa's Talking's event does and gets an empty ending reply.
public struct DialectRoutes: Sendable {
    let service: USSDService
    let guardian: CallbackGuard
    let budget: TextBudget
    let flares: FlaresCredentials?
    let dialects: Set<String>
    let logger: Logger

    /// The `userid` and `password` an operator's Flares platform puts in every query, when set.
    public struct FlaresCredentials: Sendable {
        public let user: String
        public let password: String

        public init(user: String, password: String) {
            (self.user, self.password) = (user, password)
        }
    }

    /// `budget` is the menus' page budget: a reply over a dialect's own (160 characters on every
    /// network these aggregators reach) is cut to it and counted, which lint's check of every screen
    /// against the menus' budget makes impossible while that budget is at most 160.
    /// `dialects`: the routes to serve, by provider name (`hubtel`, `nalo`, `arkesel`, `flares`).
    public init(
        service: USSDService, guardian: CallbackGuard, budget: TextBudget, flares: FlaresCredentials?, dialects: Set<String>, logger: Logger
    ) {
        self.service = service
        self.dialects = dialects
        self.guardian = guardian
        self.budget = budget
        self.flares = flares
        self.logger = logger
    }

    public func register(on router: Router<GatewayRequestContext>) {
        if self.dialects.contains("hubtel") { self.hubtel(router) }
        if self.dialects.contains("nalo") { self.nalo(router) }
        if self.dialects.contains("arkesel") { self.arkesel(router) }
        if self.dialects.contains("flares") { self.flares(router) }
    }

    func hubtel(_ router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/ussd/hubtel")) { request, context in
            let hop = try await self.decode(request, context, route: "ussd.hubtel") { (body: [UInt8]) throws(MalformedCallback) in
                try HubtelHop(body: body)
            }
            return self.response(
                hop.render(try await self.answer(hop.canonical, request, context, budget: HubtelHop.pageBudget))
            )
        }
    }

    func nalo(_ router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/ussd/nalo")) { request, context in
            let hop = try await self.decode(request, context, route: "ussd.nalo") { (body: [UInt8]) throws(MalformedCallback) in
                try NaloHop(body: body)
            }
            return self.response(
                hop.render(try await self.answer(hop.canonical, request, context, budget: NaloHop.pageBudget)))
        }
    }

    func arkesel(_ router: Router<GatewayRequestContext>) {
        router.post(self.guardian.paths("/ussd/arkesel")) { request, context in
            let hop = try await self.decode(request, context, route: "ussd.arkesel") { (body: [UInt8]) throws(MalformedCallback) in
                try ArkeselHop(body: body)
            }
            return self.response(
                hop.render(
                    try await self.answer(hop.canonical, request, context, budget: ArkeselHop.pageBudget))
            )
        }
    }

    func flares(_ router: Router<GatewayRequestContext>) {
        router.get(self.guardian.paths("/ussd/flares")) { request, context in
            try self.guardian.check(request, context)
            let hop: FlaresHop
            do {
                hop = try FlaresHop(query: Self.query(request))
            } catch let error as MalformedCallback {
                throw self.guardian.refuse(error.description, request, context, route: "ussd.flares")
            }
            if let expected = self.flares {
                guard Self.same(hop.userID, expected.user), Self.same(hop.password, expected.password) else {
                    throw self.guardian.refuse(
                        "userid or password does not match FLARES_USERID / FLARES_PASSWORD", request, context, route: "ussd.flares")
                }
            }
            // Flares does not mark a session's first hop: the planner tells it by the session.
            return self.response(hop.render(try await self.answer(hop.canonical, request, context, budget: FlaresHop.pageBudget)))
        }
    }

    /// The guard's checks, then the body decoded; a malformed one is a 400 with its reason logged.
    func decode<Hop>(
        _ request: Request, _ context: GatewayRequestContext, route: String, _ decoder: ([UInt8]) throws(MalformedCallback) -> Hop
    ) async throws -> Hop {
        try self.guardian.check(request, context)
        let body = try await CallbackBody.bytes(request, logger: context.logger, route: route)
        do {
            return try decoder(body)
        } catch {
            throw self.guardian.refuse(error.description, request, context, route: route)
        }
    }

    /// The hop answered by the USSD service (or the session closed, for an end or timeout notice).
    func answer(_ hop: CanonicalHop, _ request: Request, _ context: GatewayRequestContext, budget: Int) async throws -> DialectReply {
        guard let msisdn = MSISDN(parsing: "+" + hop.phone, plan: self.service.engine.plan) else {
            throw self.guardian.refuse(
                "the number is not a mobile number of a country served", request, context, route: "ussd." + hop.provider.rawValue)
        }
        switch hop.phase {
        case .end, .timeout:
            await self.service.sessionClosed(sessionId: USSDHop.sessionId(of: hop), msisdn: msisdn, timedOut: hop.phase == .timeout)
            return DialectReply(text: "", ends: true)
        case .begin, .continue:
            let ussd = USSDHop(hop, msisdn: msisdn, serviceCodes: self.service.engine.graph.document.serviceCodes)
            switch await self.service.handle(ussd) {
            case .reply(let text, _):
                return self.fitted(DialectReply(engine: text), budget: budget, provider: hop.provider)
            case .refused(let reason):
                throw self.guardian.refuse(reason, request, context, route: "ussd." + hop.provider.rawValue)
            }
        }
    }

    /// The reply within the dialect's page budget.
    func fitted(_ reply: DialectReply, budget: Int, provider: CanonicalHop.Provider) -> DialectReply {
        let (fitted, cut) = Self.fitted(reply, dialectBudget: budget, menus: self.budget)
        if cut { self.service.metrics.count("ussd_replies_cut_total", [("provider", provider.rawValue)]) }
        return fitted
    }

    /// `reply` cut to the smaller of the dialect's budget (GSM-7 characters; 70 in UCS-2) and the
    /// menus', and whether it had to be.
    static func fitted(_ reply: DialectReply, dialectBudget: Int, menus: TextBudget) -> (DialectReply, Bool) {
        let limit = TextBudget(gsm7: min(dialectBudget, menus.gsm7), ucs2: min(menus.ucs2, 70))
        guard !limit.fits(reply.text) else { return (reply, false) }
        return (DialectReply(text: limit.truncate(reply.text), ends: reply.ends), true)
    }

    func response(_ rendered: RenderedReply) -> Response {
        var headers: HTTPFields = [.contentType: rendered.contentType]
        for (name, value) in rendered.headers.sorted(by: { $0.key < $1.key }) {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: rendered.body)))
    }

    /// The query's fields, percent-decoded; the first of a repeated name.
    static func query(_ request: Request) -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in request.uri.queryParameters where fields[String(name)] == nil {
            fields[String(name)] = String(value)
        }
        return fields
    }

    /// Compared in constant time.
    static func same(_ given: String?, _ expected: String) -> Bool {
        guard let given else { return false }
        let (a, b) = (Array(SHA256.hash(data: Array(given.utf8))), Array(SHA256.hash(data: Array(expected.utf8))))
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
