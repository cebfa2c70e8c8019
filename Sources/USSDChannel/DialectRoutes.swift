import AfricasTalking
import Basics
import Crypto
import Foundation
import GatewayHTTP
import GatewayTelemetry
import Logging
import Menus
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

    /// Served by the hop server (``HopRoutes``), in the channel pipeline.
    public func register(on hops: HopRoutes) {
        if self.dialects.contains("hubtel") { self.serve(hops, "hubtel", HubtelHop.init(body:), budget: HubtelHop.pageBudget) }
        if self.dialects.contains("nalo") { self.serve(hops, "nalo", NaloHop.init(body:), budget: NaloHop.pageBudget) }
        if self.dialects.contains("arkesel") { self.serve(hops, "arkesel", ArkeselHop.init(body:), budget: ArkeselHop.pageBudget) }
        if self.dialects.contains("flares") { hops.add(.get, "/ussd/flares", guardian: self.guardian) { call in try await self.flares(call) } }
    }

    /// A JSON dialect's route: `POST /ussd/<name>`, its body decoded by `decoder`.
    func serve<Hop: DialectHop>(
        _ hops: HopRoutes, _ name: String, _ decoder: @escaping @Sendable ([UInt8]) throws(MalformedCallback) -> Hop, budget: Int
    ) {
        hops.add(.post, "/ussd/" + name, guardian: self.guardian) { call in
            let route = "ussd." + name
            let hop: Hop
            do throws(MalformedCallback) {
                hop = try decoder(Array(call.body.readableBytesView))
            } catch {
                throw self.guardian.refuse(error.description, call, route: route)
            }
            return Self.answer(hop.render(try await self.answer(hop.canonical, call, budget: budget)))
        }
    }

    func flares(_ call: CallbackCall) async throws -> CallbackAnswer {
        let hop: FlaresHop
        do {
            hop = try FlaresHop(query: Self.query(call.query))
        } catch {
            throw self.guardian.refuse(error.description, call, route: "ussd.flares")
        }
        if let expected = self.flares {
            guard Self.same(hop.userID, expected.user), Self.same(hop.password, expected.password) else {
                throw self.guardian.refuse("userid or password does not match FLARES_USERID / FLARES_PASSWORD", call, route: "ussd.flares")
            }
        }
        // Flares does not mark a session's first hop: the planner tells it by the session.
        return Self.answer(hop.render(try await self.answer(hop.canonical, call, budget: FlaresHop.pageBudget)))
    }

    /// The hop answered by the USSD service (or the session closed, for an end or timeout notice).
    func answer(_ hop: CanonicalHop, _ call: CallbackCall, budget: Int) async throws -> DialectReply {
        guard let msisdn = MSISDN(parsing: "+" + hop.phone, plan: self.service.engine.plan) else {
            throw self.guardian.refuse("the number is not a mobile number of a country served", call, route: "ussd." + hop.provider.rawValue)
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
                throw self.guardian.refuse(reason, call, route: "ussd." + hop.provider.rawValue)
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

    static func answer(_ rendered: RenderedReply) -> CallbackAnswer {
        CallbackAnswer(contentType: rendered.contentType, headers: rendered.headers.sorted(by: { $0.key < $1.key }), body: rendered.body)
    }

    /// The query's fields, percent-decoded as a router does (``FormFields/query(_:)``).
    static func query(_ query: Substring) -> [String: String] {
        FormFields.query(query)
    }

    /// Compared in constant time.
    static func same(_ given: String?, _ expected: String) -> Bool {
        guard let given else { return false }
        return ConstantTime.equal(Array(SHA256.hash(data: Array(given.utf8))), Array(SHA256.hash(data: Array(expected.utf8))))
    }
}

/// What the JSON dialects' hops have in common for their route.
protocol DialectHop: Sendable {
    var canonical: CanonicalHop { get }
    func render(_ reply: DialectReply) -> RenderedReply
}

extension HubtelHop: DialectHop {}
extension NaloHop: DialectHop {}
extension ArkeselHop: DialectHop {}
