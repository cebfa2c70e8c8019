import Basics
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Postgres
import Redis
import Synchronization
import Wallet

/// How the desk behaves: timeouts, lockout, what its enrolment codes are called.
public struct DeskSettings: Sendable {
    /// A session unused this long ends (`DESK_IDLE_MINUTES`).
    public var idle: Duration = .seconds(15 * 60)
    /// A session ends this long after sign-in, used or not (`DESK_SESSION_HOURS`).
    public var absolute: Duration = .seconds(8 * 3600)
    /// Wrong passwords or codes in a row before the account waits (`DESK_LOCKOUT_ATTEMPTS`).
    public var lockoutAttempts = 5
    /// How long it waits (`DESK_LOCKOUT_MINUTES`).
    public var lockout: Duration = .seconds(15 * 60)
    /// The name authenticator apps show beside the login.
    public var issuer = "USSD wallet desk"
    /// Cookies marked `Secure`: the admin listener speaks TLS.
    public var secureCookies = false
    public var plan: NumberingPlan = .kenya
    /// The deployment's currency (`CURRENCY`): how amounts are shown and typed.
    public var currency: Currency = .kenyanShilling

    public init() {}
}

/// The staff desk: server-rendered pages under `/desk` on the admin listener for support,
/// finance, auditors and administrators. A person signs in with a password and TOTP; every page
/// then runs as that person in the database (``PostgresClient/acting(as:)``), through the same
/// wallet calls as the command line, so the database's own checks (four eyes, who may do what)
/// judge the person, and every change is written to the audit trail in its transaction.
public final class StaffDesk: Sendable {
    let settings: DeskSettings
    let directory: StaffDirectory
    let sessions: DeskSessions
    let views: DeskViews
    let postgres: PostgresClient
    let makeWallet: @Sendable (PostgresClient) -> Wallet
    let now: @Sendable () -> Date
    let logger: Logger
    /// Closed until the desk's database login has been checked (``open()``): every page answers 503.
    let gate = Mutex(false)

    /// `postgres` logs in as a desk login (a member of `ussd_desk`); `makeWallet` builds the
    /// wallet the gateway would, over the client it is given (the desk's, acting as the person).
    public init(
        settings: DeskSettings, postgres: PostgresClient, redis: RedisClient, sessionKey: SymmetricKey,
        makeWallet: @escaping @Sendable (PostgresClient) -> Wallet, now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) throws {
        self.settings = settings
        self.postgres = postgres
        self.directory = StaffDirectory(postgres: postgres, now: now)
        self.sessions = DeskSessions(redis: redis, key: sessionKey, idle: settings.idle, absolute: settings.absolute, secure: settings.secureCookies)
        self.views = try DeskViews()
        self.makeWallet = makeWallet
        self.now = now
        self.logger = logger
    }

    public func shutdown() async { await self.directory.shutdown() }

    /// Lets people in: the desk's login was checked.
    public func open() { self.gate.withLock { $0 = true } }

    public var isOpen: Bool { self.gate.withLock { $0 } }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        let desk = router.group("/desk")
        desk.add(middleware: DeskGate(desk: self))
        desk.get("/desk.css") { _, _ in self.views.stylesheet() }
        desk.get { request, _ in
            guard let visit = try await self.visit(request) else { return Response.redirect(to: "/desk/sign-in", type: .normal) }
            return Response.redirect(to: visit.member.role == .admin ? "/desk/staff" : "/desk/search", type: .normal)
        }
        self.registerSignIn(desk)
        self.registerCustomers(desk)
        self.registerQueues(desk)
        self.registerStaff(desk)
    }

    // MARK: - Who is asking

    /// A signed-in person's request: their session, their account as it is now, and the wallet
    /// acting as them.
    struct Visit: Sendable {
        let id: String
        var session: DeskSession
        let member: StaffMember
        let csrf: String
        let wallet: Wallet
        /// Signed out by this request: nothing is written back.
        var ended = false

        var role: DeskRole { self.member.role }
        var login: String { self.member.login }
    }

    /// The signed-in person behind `request`, or nil: no or a forged cookie, an expired session, a
    /// half-finished sign-in, or an account disabled or signed out everywhere since. Refreshes
    /// the idle timeout.
    func visit(_ request: Request) async throws -> Visit? {
        guard let (id, session) = try await self.session(request), session.stage == .signedIn else { return nil }
        guard let member = try await self.directory.member(session.login), member.disabledAt == nil, member.sessionEpoch == session.epoch else {
            try await self.sessions.end(id)
            return nil
        }
        var fresh = session
        fresh.lastSeenAt = self.now()
        return Visit(
            id: id, session: fresh, member: member, csrf: self.sessions.csrfToken(id),
            wallet: self.makeWallet(self.postgres.acting(as: member.login))
        )
    }

    /// The session the request's cookie names, at any stage; nil once it expired (written to the
    /// audit trail when it is found so).
    func session(_ request: Request) async throws -> (id: String, session: DeskSession)? {
        guard let cookie = Self.cookie(request, named: DeskSessions.cookieName), let (id, session, expired) = try await self.sessions.load(cookie, now: self.now())
        else { return nil }
        if expired {
            try await self.directory.audit("desk.session_expired", login: session.login, details: ["path": String(request.uri.path.prefix(200))])
            return nil
        }
        return (id, session)
    }

    static func cookie(_ request: Request, named name: String) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == name { return String(parts[1]) }
            }
        }
        return nil
    }

    /// A GET page for someone signed in who may `permission`: the sign-in page otherwise, or 403.
    func page(_ request: Request, _ permission: DeskPermission?, _ body: (inout Visit) async throws -> Response) async throws -> Response {
        guard var visit = try await self.visit(request) else { return Response.redirect(to: "/desk/sign-in", type: .normal) }
        if let permission, !visit.role.may(permission) {
            try await self.directory.audit("desk.forbidden", login: visit.login, details: ["path": String(request.uri.path.prefix(200)), "needs": permission.rawValue])
            return try self.refusal(.forbidden, "Your role (\(visit.role.title)) may not see this page.", visit: visit)
        }
        let response = try await body(&visit)
        // The line for this page was shown (unless the answer is a redirect to the page that shows it).
        if !(300..<400).contains(response.status.code) {
            visit.session.notice = nil
            visit.session.problem = nil
        }
        try await self.sessions.save(visit.id, visit.session)
        return response
    }

    /// A form post: refused (403, and written to the audit trail) when it comes from another site,
    /// without a session, without this session's CSRF token, or from a role that may not
    /// `permission`; a body over 64 KiB or malformed is a 400.
    func post(
        _ request: Request, _ permission: DeskPermission?, _ body: (inout Visit, [String: String]) async throws -> Response
    ) async throws -> Response {
        let path = String(request.uri.path.prefix(200))
        if let why = Self.crossSite(request) {
            try await self.directory.audit("desk.post_refused", login: nil, details: ["path": path, "why": why])
            return try self.refusal(.forbidden, "This form was sent from another site: refused.", visit: nil)
        }
        guard var visit = try await self.visit(request) else {
            try await self.directory.audit("desk.post_refused", login: nil, details: ["path": path, "why": "no session"])
            return try self.refusal(.forbidden, "You are not signed in (or your session ended): sign in again.", visit: nil)
        }
        guard let form = try await Self.form(request) else { return try self.refusal(.badRequest, "The form could not be read.", visit: visit) }
        guard self.sessions.checkCSRF(visit.id, form["csrf"]) else {
            try await self.directory.audit("desk.csrf_refused", login: visit.login, details: ["path": path])
            return try self.refusal(.forbidden, "This form has no valid token for your session: refused. Reload the page and try again.", visit: visit)
        }
        if let permission, !visit.role.may(permission) {
            try await self.directory.audit("desk.forbidden", login: visit.login, details: ["path": path, "needs": permission.rawValue])
            return try self.refusal(.forbidden, "Your role (\(visit.role.title)) may not do this.", visit: visit)
        }
        let response = try await body(&visit, form)
        if !visit.ended { try await self.sessions.save(visit.id, visit.session) }
        return response
    }

    /// Why a post is from another site: `Sec-Fetch-Site` says so, or `Origin` is not this host.
    static func crossSite(_ request: Request) -> String? {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" {
            return "Sec-Fetch-Site: \(site.prefix(40))"
        }
        if let origin = request.headers[.origin] {
            let host = request.head.authority ?? request.headers[HTTPField.Name("Host")!] ?? ""
            guard origin == "http://\(host)" || origin == "https://\(host)" else { return "Origin: \(origin.prefix(100))" }
        }
        return nil
    }

    /// A form body's fields; nil when over 64 KiB or malformed.
    static func form(_ request: Request) async throws -> [String: String]? {
        guard let buffer = try? await request.body.collect(upTo: 64 * 1024) else { return nil }
        return try? FormFields.parse(buffer.readableBytesView)
    }

    // MARK: - Answers

    /// A page of the desk for `visit` (nil: signed out) from its template and `values`.
    func render(_ template: String, title: String, visit: Visit?, current: String = "", status: HTTPResponse.Status = .ok, _ values: [String: Any] = [:]) throws
        -> Response
    {
        var context = values
        context["title"] = title
        if let visit {
            let nav: [(String, String, DeskPermission)] = [
                ("Customers", "/desk/search", .viewCustomers), ("Requests", "/desk/requests", .viewRequests), ("M-Pesa review", "/desk/review", .viewReview),
                ("Daily report", "/desk/report", .viewReport), ("Audit trail", "/desk/audit", .viewAudit), ("Staff", "/desk/staff", .viewStaff),
            ]
            context["staff"] = [
                "name": visit.member.displayName, "role": visit.role.title, "csrf": visit.csrf,
                "nav": nav.filter { visit.role.may($0.2) }.map { ["label": $0.0, "href": $0.1, "current": $0.1 == current] as [String: Any] },
            ] as [String: Any]
            context["csrf"] = visit.csrf
            if context["notice"] == nil, let notice = visit.session.notice { context["notice"] = notice }
            if context["problem"] == nil, let problem = visit.session.problem { context["problem"] = problem }
        }
        return self.views.page(try self.views.render(template, context), status: status)
    }

    func refusal(_ status: HTTPResponse.Status, _ text: String, visit: Visit?) throws -> Response {
        try self.render("message", title: "Refused", visit: visit, status: status, ["heading": "Refused", "text": text, "back": visit == nil ? "/desk/sign-in" : "/desk"])
    }

    /// After a post: back to `location`, with a line for the next page.
    func redirect(_ location: String, _ visit: inout Visit, notice: String? = nil, problem: String? = nil) -> Response {
        visit.session.notice = notice
        visit.session.problem = problem
        return Response.redirect(to: location, type: .normal)
    }

    /// The words of a refusal a person may read: the wallet's and the database's own.
    static func words(_ error: any Error) -> String? {
        switch error {
        case let error as LedgerDeskError: return error.description
        case let error as WalletError: return error.description
        case let error as StaffError: return error.description
        default: return nil
        }
    }

    /// A reason typed into a form, as the wallet takes it; the problem otherwise.
    static func action(_ form: [String: String], field: String = "reason") -> Result<OperatorAction, WalletError> {
        Result { () throws(WalletError) in try OperatorAction(reason: form[field] ?? "") }
    }
}

/// Every desk page answers 503 until the desk is open.
struct DeskGate<Context: RequestContext>: RouterMiddleware {
    let desk: StaffDesk

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard self.desk.isOpen else {
            return DeskViews.response(
                "The staff desk is starting: its database login is being checked. Try again in a moment.", type: "text/plain; charset=utf-8",
                status: .serviceUnavailable)
        }
        return try await next(request, context)
    }
}
