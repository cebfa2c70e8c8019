import Foundation
import HTTPTypes
import Hummingbird

/// Signing in (password, then the TOTP code, enrolling it the first time), signing out, and a
/// person's own account. Every refusal is written to the audit trail by the desk's login.
extension StaffDesk {
    func registerSignIn<Context: RequestContext>(_ desk: RouterGroup<Context>) {
        desk.get("/sign-in") { request, _ in
            if try await self.visit(request) != nil { return Response.redirect(to: "/desk", type: .normal) }
            return try self.signInPage(problem: nil)
        }
        desk.post("/sign-in") { request, _ in try await self.signIn(request) }
        desk.get("/second-factor") { request, _ in try await self.secondFactorPage(request, problem: nil) }
        desk.post("/second-factor") { request, _ in try await self.secondFactor(request) }
        desk.post("/sign-out") { request, _ in
            try await self.post(request, nil) { visit, _ in
                try await self.sessions.end(visit.id)
                visit.ended = true
                try await self.directory.audit("desk.signed_out", login: visit.login)
                return self.signedOut()
            }
        }
        desk.post("/sign-out-everywhere") { request, _ in
            try await self.post(request, nil) { visit, _ in
                try await self.directory.signOutEverywhere(visit.login)
                try await self.sessions.end(visit.id)
                visit.ended = true
                try await self.directory.audit("desk.signed_out_everywhere", login: visit.login)
                return self.signedOut()
            }
        }
        desk.get("/account") { request, _ in
            try await self.page(request, nil) { visit in
                try self.render(
                    "account", title: "Your account", visit: visit,
                    ["name": visit.member.displayName, "login": visit.login, "role": visit.role.title, "group": visit.role.databaseGroup]
                )
            }
        }
        desk.post("/account/password") { request, _ in
            try await self.post(request, nil) { visit, form in
                // Tries at the current password count towards the lockout as a sign-in's do; a lock
                // ends this session (a stolen cookie guesses no further).
                let settings = self.settings
                guard try await self.directory.reserveAttempt(visit.login, limit: settings.lockoutAttempts, lockFor: settings.lockout, now: self.now()) != nil else {
                    try await self.sessions.end(visit.id)
                    visit.ended = true
                    return self.signedOut()
                }
                let right: Bool
                do {
                    right = try await self.directory.checkPassword(form["current"] ?? "", of: visit.member)
                } catch {
                    try? await self.directory.releaseAttempt(visit.login)
                    throw error
                }
                guard right else {
                    let locked = try await self.directory.recordFailure(visit.login, limit: settings.lockoutAttempts, lockFor: settings.lockout, now: self.now())
                    try await self.directory.audit(
                        "desk.password_refused", login: visit.login, details: ["why": "the current password was wrong", "locked": String(locked != nil)])
                    if locked != nil {
                        try await self.sessions.end(visit.id)
                        visit.ended = true
                        return self.signedOut()
                    }
                    return self.redirect("/desk/account", &visit, problem: "The current password is not right.")
                }
                try await self.directory.releaseAttempt(visit.login)
                let new = form["new"] ?? ""
                if let problem = StaffPassword.problem(new) { return self.redirect("/desk/account", &visit, problem: problem) }
                _ = try await self.directory.resetPassword(visit.login, hash: try await self.directory.hash(new))
                try await self.directory.audit("desk.password_changed", login: visit.login)
                // The change ended every session, this one too.
                try await self.sessions.end(visit.id)
                visit.ended = true
                return self.signedOut()
            }
        }
    }

    func signInPage(problem: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        try self.render(
            "sign-in", title: "Sign in", visit: nil, status: status,
            ["problem": problem as Any, "attempts": self.settings.lockoutAttempts, "lockMinutes": Int(self.settings.lockout.components.seconds / 60)]
        )
    }

    func signedOut() -> Response {
        Response(status: .seeOther, headers: [.location: "/desk/sign-in", .setCookie: self.sessions.cookieHeader(nil)])
    }

    /// The password step: on success a half session (the code is next); any failure says the same
    /// to the browser and the reason to the audit trail. The try is reserved before the password
    /// is checked, so tries sent at once cannot outrun the lockout.
    func signIn(_ request: Request) async throws -> Response {
        if let why = Self.crossSite(request) {
            try await self.directory.audit("desk.post_refused", login: nil, details: ["path": "/desk/sign-in", "why": why])
            return try self.refusal(.forbidden, "This form was sent from another site: refused.", visit: nil)
        }
        guard let form = try await Self.form(request) else { return try self.signInPage(problem: "The form could not be read.", status: .badRequest) }
        let login = (form["login"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let password = form["password"] ?? ""
        let wrong = "That login and password do not match an account that may sign in."
        do {
            guard let member = try await self.directory.member(login), member.disabledAt == nil else {
                // As long as a real check; the typed login is kept only when it names an account
                // (a password typed there is not).
                _ = try await self.directory.checkPassword(password, of: nil)
                let known = try await self.directory.member(login)
                try await self.directory.audit(
                    "desk.signin_refused", login: known?.login, details: ["why": known == nil ? "no such login" : "the account is disabled"])
                return try self.signInPage(problem: wrong, status: .unauthorized)
            }
            guard try await self.directory.reserveAttempt(member.login, limit: self.settings.lockoutAttempts, lockFor: self.settings.lockout, now: self.now()) != nil else {
                return try await self.lockedOut(member.login)
            }
            let right: Bool
            do {
                right = try await self.directory.checkPassword(password, of: member)
            } catch {
                try await self.directory.releaseAttempt(member.login)
                throw error
            }
            guard right else {
                return try await self.failed(member.login, why: "a wrong password") { locked in
                    try self.signInPage(problem: locked.map { "Too many wrong tries: this account is locked until \(DeskFormat.time($0))." } ?? wrong, status: .unauthorized)
                }
            }
            try await self.directory.releaseAttempt(member.login)
            let now = self.now()
            let cookie = try await self.sessions.start(DeskSession(login: member.login, stage: .password, epoch: member.sessionEpoch, createdAt: now, lastSeenAt: now))
            return Response(status: .seeOther, headers: [.location: "/desk/second-factor", .setCookie: self.sessions.cookieHeader(cookie)])
        } catch let busy as StaffError {
            return try self.signInPage(problem: busy.description, status: .serviceUnavailable)
        }
    }

    /// The account may not try now (locked, or as many tries in flight as the limit): refused, audited.
    func lockedOut(_ login: String) async throws -> Response {
        try await self.directory.audit("desk.signin_refused", login: login, details: ["why": "the account is locked"])
        let until = try await self.directory.member(login)?.lockedUntil
        let when = until.map { " until \(DeskFormat.time($0))" } ?? " for now"
        return try self.signInPage(problem: "This account is locked after too many wrong tries\(when).", status: .unauthorized)
    }

    /// Counts a failure (locking the account at the limit), writes it to the audit trail, and
    /// answers with `page`, given the lock's end when this failure locked it.
    func failed(_ login: String, why: String, page: (Date?) async throws -> Response) async throws -> Response {
        let locked = try await self.directory.recordFailure(login, limit: self.settings.lockoutAttempts, lockFor: self.settings.lockout, now: self.now())
        var details = ["why": why]
        if let locked { details["locked_until"] = ISO8601DateFormatter().string(from: locked) }
        try await self.directory.audit("desk.signin_refused", login: login, details: details)
        return try await page(locked)
    }

    /// The code step's page: the QR code of a new secret the first time (once), else the form.
    /// Only for a half session still current (no reset or sign-out everywhere since) of an account
    /// neither disabled nor locked.
    func secondFactorPage(_ request: Request, problem: String?, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (id, session) = try await self.session(request), session.stage == .password else {
            return Response.redirect(to: "/desk/sign-in", type: .normal)
        }
        guard let member = try await self.directory.member(session.login), member.disabledAt == nil, member.sessionEpoch == session.epoch,
            !member.isLocked(at: self.now())
        else {
            try await self.sessions.end(id)
            return Response.redirect(to: "/desk/sign-in", type: .normal)
        }
        var values: [String: Any] = ["csrf": self.sessions.csrfToken(id), "login": member.login, "problem": problem as Any]
        if member.totpEnrolledAt != nil {
            values["enrolled"] = true
        } else if member.totpShownAt == nil, let secret = try await self.directory.showNewSecret(member.login) {
            let uri = StaffTOTP.enrolmentURI(secret: secret, login: member.login, issuer: self.settings.issuer)
            values["qr"] = QRCode.svg(uri) ?? ""
            values["key"] = StaffTOTP.typedKey(secret)
            try await self.directory.audit("desk.second_factor_shown", login: member.login)
        } else {
            values["pending"] = true
        }
        return try self.render("second-factor", title: "Second factor", visit: nil, status: status, values)
    }

    /// The code step: a right code for a step not used before completes the sign-in in a new
    /// session (a new id: nothing from before the password carries over).
    func secondFactor(_ request: Request) async throws -> Response {
        if let why = Self.crossSite(request) {
            try await self.directory.audit("desk.post_refused", login: nil, details: ["path": "/desk/second-factor", "why": why])
            return try self.refusal(.forbidden, "This form was sent from another site: refused.", visit: nil)
        }
        guard let (id, session) = try await self.session(request), session.stage == .password else {
            return Response.redirect(to: "/desk/sign-in", type: .normal)
        }
        guard let form = try await Self.form(request), self.sessions.checkCSRF(id, form["csrf"]) else {
            try await self.directory.audit("desk.csrf_refused", login: session.login, details: ["path": "/desk/second-factor"])
            return try self.refusal(.forbidden, "This form has no valid token for your session: refused.", visit: nil)
        }
        let now = self.now()
        guard let member = try await self.directory.member(session.login), member.disabledAt == nil, member.sessionEpoch == session.epoch else {
            try await self.sessions.end(id)
            return Response.redirect(to: "/desk/sign-in", type: .normal)
        }
        guard try await self.directory.reserveAttempt(member.login, limit: self.settings.lockoutAttempts, lockFor: self.settings.lockout, now: self.now()) != nil else {
            try await self.sessions.end(id)
            return try await self.lockedOut(member.login)
        }
        let step = StaffTOTP.matchingStep(form["code"] ?? "", secret: member.totpSecret, now: now)
        let accepted: Bool
        do {
            accepted = try await step.asyncMap { try await self.directory.acceptSecondFactor(member.login, step: $0, epoch: session.epoch, now: now) } ?? false
        } catch {
            // Not judged: the try does not count.
            try? await self.directory.releaseAttempt(member.login)
            throw error
        }
        guard accepted else {
            let why = step == nil ? "a wrong second-factor code" : "a second-factor code used before"
            return try await self.failed(member.login, why: why) { locked in
                if let locked {
                    try await self.sessions.end(id)
                    return try self.signInPage(problem: "Too many wrong tries: this account is locked until \(DeskFormat.time(locked)).", status: .unauthorized)
                }
                return try await self.secondFactorPage(
                    request, problem: step == nil ? "That code is not right." : "That code was used already: wait for the next one.", status: .unauthorized)
            }
        }
        try await self.sessions.end(id)
        let cookie = try await self.sessions.start(DeskSession(login: member.login, stage: .signedIn, epoch: member.sessionEpoch, createdAt: now, lastSeenAt: now))
        try await self.directory.audit("desk.signed_in", login: member.login, details: member.totpEnrolledAt == nil ? ["second_factor": "enrolled"] : [:])
        return Response(status: .seeOther, headers: [.location: "/desk", .setCookie: self.sessions.cookieHeader(cookie)])
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
