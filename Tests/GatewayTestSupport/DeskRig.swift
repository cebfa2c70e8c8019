import Curl
import Foundation
import Postgres
@testable import StaffDesk
import Synchronization
import Testing
import TestSupport
@testable import USSDGateway
import Wallet

/// A gateway with the staff desk on its admin listener (a free port), its own desk login, and a
/// way to make members of staff as `ussd-gateway staff create` does.
struct DeskRig {
    let harness: USSDHarness
    /// The desk's database login (a member of ussd_desk).
    let deskLogin: String

    static let password = "a long enough desk password"

    static func make(_ adjust: (inout GatewayConfig) -> Void = { _ in }) async throws -> DeskRig {
        let made = try await USSDHarness.make {
            $0.adminPort = 0
            $0.desk.enabled = true
            adjust(&$0)
        }
        let deskLogin = "desk_" + UUID().uuidString.prefix(8).lowercased()
        _ = try await DatabaseRoles.createLogin(made.postgres, name: deskLogin, group: "ussd_desk", password: nil)
        var config = made.config
        config.desk.postgres = TestServers.connection(to: made.postgres.configuration, as: deskLogin)
        let harness = USSDHarness(
            config: config, postgres: made.postgres, redis: made.redis, pins: made.pins, wallet: made.wallet, graph: made.graph, clock: made.clock
        )
        return DeskRig(harness: harness, deskLogin: deskLogin)
    }

    /// A member of staff with `DeskRig.password`; with `enrolled` false their second factor is shown at
    /// their first sign-in (as after an administrator's reset), else it is the secret returned.
    func member(_ prefix: String, _ role: DeskRole, shown: Bool = true) async throws -> (login: String, secret: String) {
        let login = prefix + "_" + UUID().uuidString.prefix(6).lowercased()
        // A cheap cost: the suite runs many sign-ins beside other tests on two cores (the cost is
        // the hash's own, so the desk checks it as it was made).
        let created = try await StaffDirectory.create(
            owner: self.harness.postgres, login: login, displayName: prefix.capitalized, role: role, password: Self.password,
            cost: .init(log2Rounds: 10, blockSize: 8, parallelism: 1))
        if !shown { try await self.harness.postgres.query("UPDATE staff SET totp_shown_at = NULL WHERE login = \(login)") }
        return (login, created.totpSecret)
    }

    /// The code an authenticator shows for `secret` at the gateway's clock, `steps` steps on.
    func code(_ secret: String, steps: Int64 = 0) -> String {
        StaffTOTP.code(secret: secret, step: StaffTOTP.step(at: self.harness.clock.now) + steps)
    }

    /// Runs the gateway with `body` given its public and admin base URLs.
    func run(_ body: @Sendable (_ public: String, _ admin: String) async throws -> Void) async throws {
        let adminPort = Mutex<Int?>(nil)
        let application = try buildApplication(
            config: self.harness.config, logger: self.harness.capture.logger, menus: self.harness.graph, pins: self.harness.pins,
            onAdminRunning: { port in adminPort.withLock { $0 = port } }
        )
        try await application.test(.live) { client in
            _ = try await eventually(within: .seconds(30), every: .milliseconds(10)) { adminPort.withLock { $0 } != nil }
            let admin = try #require(adminPort.withLock { $0 })
            let scheme = self.harness.config.desk.tlsCertificateFile == nil ? "http" : "https"
            // The desk opens once its database login passed the check.
            if self.harness.config.desk.enabled && scheme == "http" {
                let curl = CurlClient()
                let open = try await eventually(within: .seconds(30), every: .milliseconds(20)) {
                    (try? await curl.execute(CurlRequest(url: "http://127.0.0.1:\(admin)/desk/sign-in")))?.status == 200
                }
                await curl.shutdown()
                try #require(open, "the desk never opened")
            }
            try await body("http://127.0.0.1:\(client.port!)", "http://127.0.0.1:\(admin)")
        }
        self.harness.expectNoTypedPINInLogs()
    }

    /// The desk's own audit rows of `action`, their `after` as text, oldest first.
    func deskRows(_ action: String) async throws -> [String] {
        try await self.harness.postgres.query("SELECT after::text FROM audit_log WHERE action = \(action) ORDER BY id").map { try $0.decode(String.self, column: 0) }
    }

    func finish() async { await self.harness.finish() }
}

/// A browser without a browser: cookies and the last page's CSRF token kept, redirects not
/// followed (each step is checked).
final class DeskClient: @unchecked Sendable {
    let http = CurlClient()
    let base: String
    private let state = Mutex<(cookie: String?, page: String)>((nil, ""))

    init(_ base: String) { self.base = base }

    var cookie: String? {
        get { self.state.withLock { $0.cookie } }
        set { self.state.withLock { $0.cookie = newValue } }
    }
    var page: String { self.state.withLock { $0.page } }
    /// The CSRF token of the last page's forms.
    var csrf: String? {
        let page = self.page
        guard let range = page.range(of: #"name="csrf" value="([^"]+)""#, options: .regularExpression) else { return nil }
        return String(page[range].dropFirst(#"name="csrf" value=""#.count).dropLast())
    }

    @discardableResult
    func get(_ path: String) async throws -> CurlResponse {
        try await self.send(CurlRequest(method: "GET", url: self.base + path, headers: self.cookieHeaders))
    }

    /// Posts `fields` (with the last page's CSRF token unless `csrf` is false), from this origin
    /// unless `origin` names another.
    @discardableResult
    func post(_ path: String, _ fields: [String: String], csrf: Bool = true, origin: String? = nil, site: String? = nil) async throws -> CurlResponse {
        var fields = fields
        if csrf, let token = self.csrf { fields["csrf"] = token }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        var headers = self.cookieHeaders + [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", origin ?? self.base)]
        if let site { headers.append(("Sec-Fetch-Site", site)) }
        return try await self.send(CurlRequest(method: "POST", url: self.base + path, headers: headers, body: Array(body.utf8)))
    }

    private var cookieHeaders: [(name: String, value: String)] { self.cookie.map { [("Cookie", "\(DeskSessions.cookieName)=\($0)")] } ?? [] }

    private func send(_ request: CurlRequest) async throws -> CurlResponse {
        let response = try await self.http.execute(request)
        if let set = response.header("Set-Cookie"), let value = set.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last {
            self.cookie = value.isEmpty || set.contains("Max-Age=0") ? nil : String(value)
        }
        if response.status == 200 || response.status >= 400 { self.state.withLock { $0.page = response.text } }
        return response
    }

    /// Signs in as `login` with the desk's test password and `code` (the authenticator's).
    func signIn(_ login: String, code: () -> String) async throws {
        let password = try await self.post("/desk/sign-in", ["login": login, "password": DeskRig.password], csrf: false)
        try #require(password.status == 303 && password.header("Location") == "/desk/second-factor", "password step: \(password.status) \(password.text.prefix(300))")
        try #require(try await self.get("/desk/second-factor").status == 200)
        let second = try await self.post("/desk/second-factor", ["code": code()])
        try #require(second.status == 303 && second.header("Location") == "/desk", "code step: \(second.status) \(second.text.prefix(400))")
        // A page of the signed-in session: its forms' token.
        try #require(try await self.get("/desk/account").status == 200)
    }

    func shutdown() async { await self.http.shutdown() }
}
