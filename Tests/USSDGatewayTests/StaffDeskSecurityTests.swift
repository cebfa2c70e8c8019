import Curl
import Foundation
@testable import GatewayTestSupport
import Postgres
import Settings
@testable import StaffDesk
import Testing
import TestSupport
@testable import USSDGateway
import Wallet

/// The staff desk refuses what it must, and says so in the audit trail: a wrong or replayed
/// second-factor code, an expired session, a post without its CSRF token or from another site,
/// a role's forged post to another role's form; it is absent from the public listener and refuses
/// to start where staff passwords would cross in the clear.
@Suite struct StaffDeskSecurityTests {
    @Test func theDeskLivesOnTheAdminListenerOnlyUnderAStrictPolicy() async throws {
        let rig = try await DeskRig.make()
        try await rig.run { publicBase, adminBase in
            let desk = DeskClient(adminBase)
            let outside = DeskClient(publicBase)
            for path in ["/desk", "/desk/sign-in", "/desk/desk.css", "/desk/search"] {
                #expect(try await outside.get(path).status == 404, "\(path) on the public listener")
            }
            let page = try await desk.get("/desk/sign-in")
            #expect(page.status == 200)
            let policy = page.header("Content-Security-Policy") ?? ""
            #expect(policy.contains("default-src 'none'") && policy.contains("form-action 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("script"))
            #expect(page.header("X-Frame-Options") == "DENY" && page.header("Cache-Control") == "no-store")
            #expect(try await desk.get("/desk/search").header("Location") == "/desk/sign-in", "signed out: to the sign-in page")
            await desk.shutdown()
            await outside.shutdown()
        }
        await rig.finish()
    }

    @Test func aWrongOrReplayedCodeIsRefusedAndAudited() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            let first = DeskClient(admin)
            #expect(try await first.post("/desk/sign-in", ["login": amina, "password": DeskRig.password], csrf: false).status == 303)
            #expect(try await first.get("/desk/second-factor").status == 200)
            let right = rig.code(secret)
            let wrong = String(format: "%06d", (Int(right)! + 1) % 1_000_000)
            let refused = try await first.post("/desk/second-factor", ["code": wrong])
            #expect(refused.status == 401 && refused.text.contains("That code is not right."))
            #expect(try await first.post("/desk/second-factor", ["code": right]).header("Location") == "/desk")
            #expect(try await first.get("/desk/search").status == 200, "signed in")

            // The same code from another browser (read over a shoulder, replayed): refused.
            let second = DeskClient(admin)
            #expect(try await second.post("/desk/sign-in", ["login": amina, "password": DeskRig.password], csrf: false).status == 303)
            #expect(try await second.get("/desk/second-factor").status == 200)
            let replayed = try await second.post("/desk/second-factor", ["code": right])
            #expect(replayed.status == 401 && replayed.text.contains("That code was used already"))
            #expect(try await second.get("/desk/search").header("Location") == "/desk/sign-in", "not signed in")
            // The next step's code works.
            rig.harness.clock.advance(by: .seconds(30))
            #expect(try await second.post("/desk/second-factor", ["code": rig.code(secret)]).header("Location") == "/desk")
            await first.shutdown()
            await second.shutdown()
        }
        let refusals = try await rig.deskRows("desk.signin_refused")
        #expect(refusals.count == 2 && refusals[0].contains("a wrong second-factor code") && refusals[1].contains("a second-factor code used before"), "\(refusals)")
        #expect(refusals.allSatisfy { $0.contains(amina) })
        #expect(try await rig.deskRows("desk.signed_in").count == 2)
        await rig.finish()
    }

    @Test func anIdleOrTooOldSessionEndsAndIsAudited() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            let desk = DeskClient(admin)
            try await desk.signIn(amina) { rig.code(secret) }
            rig.harness.clock.advance(by: .seconds(14 * 60))
            #expect(try await desk.get("/desk/search").status == 200, "14 minutes idle: still signed in")
            rig.harness.clock.advance(by: .seconds(16 * 60))
            #expect(try await desk.get("/desk/search").header("Location") == "/desk/sign-in", "16 minutes idle: signed out")
            let post = try await desk.post("/desk/sign-out", [:])
            #expect(post.status == 403, "an ended session posts nothing")

            // Busy all day: the absolute timeout ends it after 8 hours however active.
            rig.harness.clock.advance(by: .seconds(60))
            try await desk.signIn(amina) { rig.code(secret) }
            for _ in 0..<47 {
                rig.harness.clock.advance(by: .seconds(10 * 60))
                #expect(try await desk.get("/desk/search").status == 200)
            }
            rig.harness.clock.advance(by: .seconds(20 * 60))
            #expect(try await desk.get("/desk/search").header("Location") == "/desk/sign-in", "8 hours after sign-in")
            await desk.shutdown()
        }
        let expired = try await rig.deskRows("desk.session_expired")
        #expect(expired.count == 2 && expired.allSatisfy { $0.contains(amina) }, "\(expired)")
        #expect(try await rig.deskRows("desk.post_refused").contains { $0.contains("no session") })
        await rig.finish()
    }

    @Test func aPostWithoutItsTokenOrFromAnotherSiteIsRefusedAndAudited() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Halima", pin: TypedPINs.achieng, shillings: 25)
        for _ in 0..<3 { _ = try? await rig.harness.wallet.verifyPIN(msisdn, pin: TypedPINs.wrong) }
        #expect(try await rig.harness.wallet.customer(msisdn).isLocked())
        let id = try await rig.harness.postgres.query("SELECT id FROM customers WHERE msisdn = \(msisdn.value)").single()!.decode(Int64.self, column: 0)
        try await rig.run { _, admin in
            let desk = DeskClient(admin)
            try await desk.signIn(amina) { rig.code(secret) }
            #expect(try await desk.post("/desk/customers/\(id)/open", ["reason": "caller verified"]).status == 303)
            #expect(try await desk.get("/desk/customers/\(id)").status == 200)
            let unlock = "/desk/customers/\(id)/unlock"
            #expect(try await desk.post(unlock, ["reason": "forged"], csrf: false).status == 403, "no token")
            #expect(try await desk.post(unlock, ["reason": "forged", "csrf": "not-the-token"], csrf: false).status == 403, "a wrong token")
            #expect(try await desk.post(unlock, ["reason": "forged"], origin: "https://evil.example").status == 403, "another origin")
            #expect(try await desk.post(unlock, ["reason": "forged"], site: "cross-site").status == 403, "Sec-Fetch-Site cross-site")
            #expect(try await rig.harness.wallet.customer(msisdn).isLocked(), "none of them unlocked anything")
            _ = try await desk.get("/desk/customers/\(id)")
            let done = try await desk.post(unlock, ["reason": "caller verified, locked by mistake"])
            #expect(done.status == 303)
            #expect(try await !rig.harness.wallet.customer(msisdn).isLocked())
            await desk.shutdown()
        }
        #expect(try await rig.deskRows("desk.csrf_refused").count == 2)
        let crossSite = try await rig.deskRows("desk.post_refused")
        #expect(crossSite.count == 2 && crossSite[0].contains("evil.example") && crossSite[1].contains("cross-site"), "\(crossSite)")
        let unlocked = try #require(try await rig.harness.postgres.query("SELECT actor, db_user FROM audit_log WHERE action = 'pin.unlocked'").single())
        #expect(try unlocked.decode((String, String).self) == (amina, "\(rig.deskLogin) as \(amina)"), "the person, through the desk")
        await rig.finish()
    }

    @Test func aSupportAgentsForgedPostToAnApproversFormIsRefusedAndAudited() async throws {
        let rig = try await DeskRig.make()
        let (amina, aminaSecret) = try await rig.member("amina", .support)
        let (chebet, chebetSecret) = try await rig.member("chebet", .financeMaker)
        let msisdn = try await rig.harness.customer(freshLocal(), name: "Halima", pin: TypedPINs.achieng, shillings: 25)
        let id = try await rig.harness.postgres.query("SELECT id FROM customers WHERE msisdn = \(msisdn.value)").single()!.decode(Int64.self, column: 0)
        try await rig.run { _, admin in
            let maker = DeskClient(admin)
            try await maker.signIn(chebet) { rig.code(chebetSecret) }
            #expect(try await maker.post("/desk/customers/\(id)/open", ["reason": "ticket 88"]).status == 303)
            _ = try await maker.get("/desk/customers/\(id)")
            #expect(try await maker.post("/desk/customers/\(id)/adjust", ["amount": "40", "direction": "from_suspense", "reason": "ticket 88"]).status == 303)
            let request = try #require(try await rig.harness.wallet.ledgerRequests().first)

            let support = DeskClient(admin)
            try await support.signIn(amina) { rig.code(aminaSecret) }
            _ = try await support.get("/desk/requests")
            #expect(!support.page.contains("/desk/requests/\(request.id)/decide"), "no decision form for support")
            let forged = try await support.post("/desk/requests/\(request.id)/decide", ["decision": "approve", "reason": "looks fine"])
            #expect(forged.status == 403 && forged.text.contains("may not decide"))
            // The maker's own forged approval: the desk refuses it before the database would.
            _ = try await maker.get("/desk/requests")
            #expect(maker.page.contains("You asked for this: another person must decide it (four eyes)."))
            #expect(try await maker.post("/desk/requests/\(request.id)/decide", ["decision": "approve", "reason": "mine"]).status == 403)
            await maker.shutdown()
            await support.shutdown()
        }
        #expect(try await rig.harness.wallet.ledgerRequest(try #require(try await rig.harness.wallet.ledgerRequests().first).id)?.status == "pending")
        #expect(try await rig.harness.wallet.balances(msisdn).main == .shillings(25), "nothing moved")
        let forbidden = try await rig.deskRows("desk.forbidden")
        #expect(forbidden.count == 2 && forbidden[0].contains(amina) && forbidden[0].contains("decideCorrection") && forbidden[1].contains(chebet), "\(forbidden)")
        await rig.finish()
    }

    @Test func repeatedFailuresLockTheAccountAndSignOutEverywhereEndsEverySession() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            let desk = DeskClient(admin)
            for _ in 0..<5 {
                #expect(try await desk.post("/desk/sign-in", ["login": amina, "password": "not the password at all"], csrf: false).status == 401)
            }
            let locked = try await desk.post("/desk/sign-in", ["login": amina, "password": DeskRig.password], csrf: false)
            #expect(locked.status == 401 && locked.text.contains("locked"), "the right password while locked")
            rig.harness.clock.advance(by: .seconds(16 * 60))
            try await desk.signIn(amina) { rig.code(secret) }

            let other = DeskClient(admin)
            rig.harness.clock.advance(by: .seconds(30))
            try await other.signIn(amina) { rig.code(secret) }
            _ = try await desk.get("/desk/account")
            #expect(try await desk.post("/desk/sign-out-everywhere", [:]).header("Location") == "/desk/sign-in")
            #expect(try await other.get("/desk/search").header("Location") == "/desk/sign-in", "the other browser is signed out too")
            await desk.shutdown()
            await other.shutdown()
        }
        let refusals = try await rig.deskRows("desk.signin_refused")
        #expect(refusals.count == 6 && refusals[4].contains("locked_until") && refusals[5].contains("the account is locked"), "\(refusals)")
        #expect(try await rig.deskRows("desk.signed_out_everywhere").count == 1)
        await rig.finish()
    }

    @Test func productionRefusesTheDeskWithoutTheAdminListenerAndItsTLS() throws {
        let base = ["ENVIRONMENT": "production", "DESK": "on", "HTTP_PORT": "8080"]
        func problem(_ extra: [String: String]) throws -> ConfigError? {
            let config = try GatewayConfig.load(environment: base.merging(extra) { $1 }, serving: false)
            #expect(config.desk.enabled)
            return config.desk.problem(environment: config.environment, adminPort: config.adminPort, adminHost: config.adminHost)
        }
        #expect(try problem([:])?.variable == "ADMIN_PORT")
        #expect(try problem(["ADMIN_PORT": "9090"])?.variable == "ADMIN_TLS_CERT_FILE")
        #expect(try problem(["ADMIN_PORT": "9090", "ADMIN_TLS_CERT_FILE": "/c.pem", "ADMIN_TLS_KEY_FILE": "/k.pem"])?.variable == "DESK_DATABASE_URL")
        let tls = ["ADMIN_PORT": "9090", "ADMIN_TLS_CERT_FILE": "/c.pem", "ADMIN_TLS_KEY_FILE": "/k.pem", "DESK_DATABASE_URL": "postgres://desk@db/ussd"]
        #expect(try problem(tls)?.variable == "DESK_SESSION_KEY")
        #expect(try problem(tls.merging(["DESK_SESSION_KEY": String(repeating: "ab", count: 32)]) { $1 }) == nil)
        // Development on this machine may use plain HTTP; off it, not.
        let development = ["ENVIRONMENT": "development", "ADMIN_PORT": "9090", "DESK_DATABASE_URL": "postgres://desk@127.0.0.1/ussd"]
        #expect(try problem(development) == nil)
        #expect(try problem(development.merging(["ADMIN_HOST": "0.0.0.0"]) { $1 })?.variable == "ADMIN_TLS_CERT_FILE")
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["DESK_SESSION_KEY": "short"], serving: false) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ADMIN_TLS_CERT_FILE": "/c.pem"], serving: false) }
    }

    @Test func serveRefusesTheDeskInProductionWithOneLine() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "ENVIRONMENT": "production", "PIN_KEY": ProductionSafetyTests.pinKey, "AT_CALLBACK_TOKEN": ProductionSafetyTests.atToken,
            "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore,
            "MENUS_PATH": RepoFiles.menus, "LOG_LEVEL": "warning", "DESK": "on",
        ]) { $1 }
        for name in ["ADMIN_PORT", "ADMIN_TLS_CERT_FILE", "ADMIN_TLS_KEY_FILE", "MPESA_CONSUMER_KEY"] { environment[name] = nil }
        for (extra, variable) in [([String: String](), "ADMIN_PORT"), (["ADMIN_PORT": "9091"], "ADMIN_TLS_CERT_FILE")] {
            let refused = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment.merging(extra) { $1 })
            #expect(await refused.wait() == 2)
            let lines = refused.errorOutput.split(separator: "\n")
            #expect(lines.count == 1 && lines.first?.contains(variable) == true, "\(refused.errorOutput)")
        }
    }

    @Test func overTLSTheCookieIsSecure() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("desk-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (certificate, key) = (folder.appendingPathComponent("cert.pem").path, folder.appendingPathComponent("key.pem").path)
        _ = try await ChildProcess.run(
            "/usr/bin/openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate],
            environment: ProcessInfo.processInfo.environment
        )
        let rig = try await DeskRig.make {
            $0.desk.tlsCertificateFile = certificate
            $0.desk.tlsKeyFile = key
        }
        let (amina, _) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            let https = admin.replacingOccurrences(of: "http://", with: "https://")
            // Signing in over TLS (once the desk is open): the cookie comes back Secure.
            var answer = ""
            _ = try await eventually(within: .seconds(30), every: .milliseconds(100)) {
                let curl = try ChildProcess.start(
                    "/usr/bin/curl",
                    ["-s", "-i", "--cacert", certificate, "-H", "Origin: \(https)", "--data-urlencode", "login=\(amina)",
                     "--data-urlencode", "password=\(DeskRig.password)", https + "/desk/sign-in"],
                    environment: ProcessInfo.processInfo.environment
                )
                _ = await curl.wait()
                answer = curl.output
                return answer.contains("HTTP/1.1 303")
            }
            let cookie = answer.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") } ?? ""
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"), "\(answer.prefix(600))")
            let plain = CurlClient()
            #expect((try? await plain.execute(CurlRequest(url: admin + "/desk/sign-in")))?.status != 200, "no plain HTTP on a TLS listener")
            await plain.shutdown()
        }
        try? FileManager.default.removeItem(at: folder)
        await rig.finish()
    }

    @Test func aSignedOutCookieOpensNothing() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            let desk = DeskClient(admin)
            try await desk.signIn(amina) { rig.code(secret) }
            let copied = try #require(desk.cookie)
            #expect(try await desk.post("/desk/sign-out", [:]).header("Location") == "/desk/sign-in")
            let thief = DeskClient(admin)
            thief.cookie = copied
            #expect(try await thief.get("/desk/search").header("Location") == "/desk/sign-in", "the session ended on the server, not only in the browser")
            await desk.shutdown()
            await thief.shutdown()
        }
        await rig.finish()
    }

    @Test func guessesSentAtOnceCannotOutrunTheLockoutNorALockedAccountsRightCode() async throws {
        let rig = try await DeskRig.make()
        let (amina, secret) = try await rig.member("amina", .support)
        try await rig.run { _, admin in
            // A browser past the password, before its code.
            let waiting = DeskClient(admin)
            #expect(try await waiting.post("/desk/sign-in", ["login": amina, "password": DeskRig.password], csrf: false).status == 303)
            #expect(try await waiting.get("/desk/second-factor").status == 200)
            // Twelve wrong passwords at once from elsewhere.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        let guesser = DeskClient(admin)
                        let status = try await guesser.post("/desk/sign-in", ["login": amina, "password": "a guess of twelve"], csrf: false).status
                        await guesser.shutdown()
                        return status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 401 })
            // The right code now: refused, the account is locked.
            let late = try await waiting.post("/desk/second-factor", ["code": rig.code(secret)])
            #expect(late.status == 401 && late.text.contains("locked"))
            #expect(try await waiting.get("/desk/search").header("Location") == "/desk/sign-in")
            await waiting.shutdown()
        }
        let refusals = try await rig.deskRows("desk.signin_refused")
        #expect(refusals.filter { $0.contains("a wrong password") }.count <= 5, "at most the limit judged: \(refusals)")
        #expect(refusals.filter { $0.contains("the account is locked") }.count >= 8)
        #expect(try await rig.harness.postgres.query("SELECT locked_until > now() FROM staff WHERE login = \(amina)").single()!.decode(Bool.self, column: 0))
        await rig.finish()
    }

    @Test func anApproversOwnRequestIsRefusedByTheDatabaseAndThePageSaysWhy() async throws {
        let rig = try await DeskRig.make()
        let (baraka, secret) = try await rig.member("baraka", .financeApprover)
        let msisdn = try await rig.harness.customer(freshLocal(), name: "Halima", pin: TypedPINs.achieng, shillings: 25)
        // Baraka asked on the command line (an approver may ask); the desk's queue would not offer
        // him the decision, so he forges it.
        let own = try await Wallet(postgres: rig.harness.postgres.acting(as: baraka), pins: rig.harness.pins).requestAdjustment(
            msisdn, amount: .shillings(9), direction: .fromSuspense, by: try OperatorAction(reason: "his own"))
        try await rig.run { _, admin in
            let desk = DeskClient(admin)
            try await desk.signIn(baraka) { rig.code(secret) }
            _ = try await desk.get("/desk/requests")
            #expect(desk.page.contains("You asked for this: another person must decide it (four eyes)."))
            #expect(try await desk.post("/desk/requests/\(own.id)/decide", ["decision": "approve", "reason": "mine"]).header("Location") == "/desk/requests")
            _ = try await desk.get("/desk/requests")
            #expect(desk.page.contains("the person who asked for this may not decide it"), "the database's refusal, in its words")
            await desk.shutdown()
        }
        #expect(try await rig.harness.wallet.ledgerRequest(own.id)?.status == "pending")
        #expect(try await rig.harness.wallet.balances(msisdn).main == .shillings(25))
        #expect(try await rig.deskRows("desk.decision_refused").count == 1)
        await rig.finish()
    }

    @Test func productionRefusesADeskLoginThatIsNotADesksOwn() async throws {
        let rig = try await DeskRig.make()
        var config = rig.harness.config
        config.environment = .production
        let logger = rig.harness.capture.logger
        try await checkDeskLogin(config: config, logger: logger)
        for (login, why) in [
            (try await TestServers.login("operator", in: "ussd_operator", to: rig.harness.postgres.configuration), "a login in ussd_operator itself"),
            (rig.harness.postgres.configuration, "a superuser"),
        ] {
            config.desk.postgres = login
            let refused = await #expect(throws: UnsafeDeskLogin.self) { try await checkDeskLogin(config: config, logger: logger) }
            #expect(refused?.why == why)
        }
        // A desk login that may switch to the owner is no desk login either.
        let owner = try await rig.harness.postgres.query("SELECT tableowner::text FROM pg_tables WHERE tablename = 'transfers' AND schemaname = current_schema()").single()!
            .decode(String.self, column: 0)
        let sneaky = "desk_" + UUID().uuidString.prefix(8).lowercased()
        _ = try await DatabaseRoles.createLogin(rig.harness.postgres, name: sneaky, group: "ussd_desk", password: nil)
        try await rig.harness.postgres.query("GRANT \(unescaped: owner) TO \(unescaped: sneaky)")
        config.desk.postgres = TestServers.connection(to: rig.harness.postgres.configuration, as: sneaky)
        let switching = await #expect(throws: UnsafeDeskLogin.self) { try await checkDeskLogin(config: config, logger: logger) }
        #expect(switching?.why == "the schema's owner, or may switch to it")
        try await rig.harness.postgres.query("REVOKE \(unescaped: owner) FROM \(unescaped: sneaky)")
        await rig.finish()
    }
}
