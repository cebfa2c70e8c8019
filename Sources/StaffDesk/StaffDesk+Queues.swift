import Basics
import Foundation
import Hummingbird
import MPesaBook
import Postgres
import Wallet

/// The queues and reports: ledger requests with approve and reject, the M-Pesa review queue,
/// the daily report with its CSV, and the audit trail.
extension StaffDesk {
    func registerQueues<Context: RequestContext>(_ desk: RouterGroup<Context>) {
        desk.get("/requests") { request, _ in
            try await self.page(request, .viewRequests) { visit in try await self.requests(all: request.uri.queryParameters.get("all") == "1", visit) }
        }
        desk.post("/requests/:id/decide") { request, context in
            let id = context.parameters.get("id", as: Int64.self) ?? 0
            // Who may decide depends on what was asked: read as the person first.
            return try await self.post(request, nil) { visit, form in try await self.decide(id, form, &visit) }
        }
        desk.get("/review") { request, _ in
            try await self.page(request, .viewReview) { visit in
                let all = request.uri.queryParameters.get("all") == "1"
                let items = try await MPesaBook(wallet: visit.wallet).reviewItems(limit: 200, openOnly: !all)
                let mayResolve = visit.role.may(.resolveReview)
                return try self.render(
                    "review", title: "M-Pesa review", visit: visit, current: "/desk/review",
                    [
                        "all": all,
                        "items": items.map { item -> [String: Any] in
                            [
                                "id": item.id, "kind": item.kind, "reference": item.reference, "reason": item.reason, "receivedAt": DeskFormat.time(item.receivedAt),
                                "deposit": item.depositID.map(String.init) as Any, "payout": item.payoutID as Any,
                                "earlier": DeskFormat.maskingNumbers(item.earlierResult ?? "(nothing before this report)"),
                                "newer": DeskFormat.maskingNumbers(item.newResult ?? "(no result in the report)"),
                                "resolution": item.resolution as Any, "resolvedBy": item.resolvedBy ?? "", "note": item.resolutionNote ?? "",
                                "mayResolve": mayResolve && item.resolution == nil,
                            ]
                        },
                    ]
                )
            }
        }
        desk.post("/review/:id/resolve") { request, context in
            let id = context.parameters.get("id", as: Int64.self) ?? 0
            return try await self.post(request, .resolveReview) { visit, form in
                do {
                    let action = try OperatorAction(reason: form["note"] ?? "")
                    let closed = try await MPesaBook(wallet: visit.wallet).resolveReviewItem(
                        id, resolution: form["resolution"] ?? "", note: action.reason, by: action)
                    return self.redirect("/desk/review", &visit, notice: closed ? "Item #\(id) closed." : nil, problem: closed ? nil : "Item #\(id) is closed already.")
                } catch {
                    guard let words = Self.words(error) else { throw error }
                    return self.redirect("/desk/review", &visit, problem: words)
                }
            }
        }
        desk.get("/report") { request, _ in
            try await self.page(request, .viewReport) { visit in
                let date = Self.reportDate(request, now: self.now())
                let report = try await MPesaBook(wallet: visit.wallet).dailyReport(date: date)
                return try self.render(
                    "report", title: "Daily report \(date)", visit: visit, current: "/desk/report",
                    ["date": date, "reconciled": report.balanced, "summary": report.balanced ? "Everything reconciles." : report.headline, "text": report.text]
                )
            }
        }
        desk.get("/report.csv") { request, _ in
            try await self.page(request, .viewReport) { visit in
                let date = Self.reportDate(request, now: self.now())
                let report = try await MPesaBook(wallet: visit.wallet).dailyReport(date: date)
                return DeskViews.response(
                    report.csv + "\n", type: "text/csv; charset=utf-8",
                    extra: [.contentDisposition: "attachment; filename=\"daily-report-\(date).csv\""]
                )
            }
        }
        desk.get("/audit") { request, _ in
            try await self.page(request, .viewAudit) { visit in try await self.auditTrail(request, visit) }
        }
    }

    /// `?date=` when it is a day, else yesterday in Nairobi (what a morning's report is about).
    static func reportDate(_ request: Request, now: Date) -> String {
        let asked = request.uri.queryParameters.get("date") ?? ""
        return DeskFormat.day(asked) != nil ? asked : DailyReport.yesterday(now: now)
    }

    func requests(all: Bool, _ visit: Visit) async throws -> Response {
        let requests = try await visit.wallet.ledgerRequests(pendingOnly: !all, limit: 200)
        return try self.render(
            "requests", title: "Ledger requests", visit: visit, current: "/desk/requests",
            [
                "all": all,
                "requests": requests.map { request -> [String: Any] in
                    let whyNot = self.whyNot(deciding: request, visit)
                    return [
                        "id": request.id, "kind": request.kind.rawValue.replacingOccurrences(of: "_", with: " "), "reference": request.reference as Any,
                        "number": MSISDN.masked(request.msisdn), "amount": request.amount.map { DeskFormat.money($0, self.settings.currency) } ?? "",
                        "direction": request.direction.map { $0 == .fromSuspense ? "credit" : "debit" } ?? "", "requestedBy": request.requestedBy,
                        "requestedAt": DeskFormat.time(request.requestedAt), "reason": request.reason, "status": request.status,
                        "pending": request.status == "pending", "approvals": request.approvals, "approvalsNeeded": request.approvalsNeeded,
                        "decidedBy": request.decidedBy as Any, "mayDecide": request.status == "pending" && whyNot == nil, "whyNot": whyNot as Any,
                    ]
                },
            ]
        )
    }

    /// What the desk allows deciding `request`: a PIN reset is support's or an administrator's,
    /// the rest a finance approver's.
    static func permission(deciding kind: LedgerRequest.Kind) -> DeskPermission {
        kind == .pinReset ? .decidePINReset : .decideCorrection
    }

    /// Why `visit`'s person may not decide `request`, in words for the queue; nil when they may.
    /// The database refuses the same whatever this says.
    func whyNot(deciding request: LedgerRequest, _ visit: Visit) -> String? {
        guard request.status == "pending" else { return nil }
        if request.requestedBy.lowercased() == visit.login.lowercased() {
            return "You asked for this: another person must decide it (four eyes)."
        }
        guard visit.role.may(Self.permission(deciding: request.kind)) else {
            return request.kind == .pinReset ? "Support or an administrator decides PIN resets." : "A finance approver decides this."
        }
        return nil
    }

    /// Approves or rejects request `id` as the person: refused by the desk when their role may not,
    /// and by the database when they asked for it themselves or approved it already.
    func decide(_ id: Int64, _ form: [String: String], _ visit: inout Visit) async throws -> Response {
        guard let request = try await visit.wallet.ledgerRequest(id) else {
            return self.redirect("/desk/requests", &visit, problem: "No request #\(id).")
        }
        let permission = Self.permission(deciding: request.kind)
        guard visit.role.may(permission) else {
            try await self.directory.audit("desk.forbidden", login: visit.login, details: ["path": "/desk/requests/\(id)/decide", "needs": permission.rawValue])
            return try self.refusal(.forbidden, "Your role (\(visit.role.title)) may not decide this request.", visit: visit)
        }
        let decision = form["decision"]
        guard decision == "approve" || decision == "reject" else { return self.redirect("/desk/requests", &visit, problem: "Choose approve or reject.") }
        do {
            let action = try OperatorAction(reason: form["reason"] ?? "")
            let after = decision == "approve" ? try await visit.wallet.approve(id, by: action) : try await visit.wallet.reject(id, by: action)
            let notice =
                after.status == "pending"
                ? "Request #\(id): your approval is recorded; it needs \(after.approvalsNeeded - after.approvals) more from another approver."
                : "Request #\(id) \(after.status)."
            return self.redirect("/desk/requests", &visit, notice: notice)
        } catch {
            guard let words = Self.words(error) else { throw error }
            try await self.directory.audit("desk.decision_refused", login: visit.login, reason: words, details: ["request": String(id)])
            return self.redirect("/desk/requests", &visit, problem: "Request #\(id): \(words)")
        }
    }

    /// The audit trail, filtered by who, what (a prefix), a number, and days; the newest 200.
    func auditTrail(_ request: Request, _ visit: Visit) async throws -> Response {
        let query = request.uri.queryParameters
        let actor = String((query.get("actor") ?? "").prefix(63))
        let action = String((query.get("action") ?? "").prefix(60))
        let number = String((query.get("number") ?? "").prefix(20))
        let from = query.get("from").flatMap { DeskFormat.day($0) != nil ? $0 : nil } ?? ""
        let to = query.get("to").flatMap { DeskFormat.day($0) != nil ? $0 : nil } ?? ""
        var values: [String: Any] = ["filter": ["actor": actor, "action": action, "number": number, "from": from, "to": to]]
        var entries: [AuditEntry] = []
        if !number.isEmpty {
            guard let msisdn = MSISDN(parsing: number, plan: self.settings.plan) else {
                values["problem"] = "That is not a mobile number of a country served."
                values["entries"] = [[String: Any]]()
                return try self.render("audit", title: "Audit trail", visit: visit, current: "/desk/audit", values)
            }
            entries = try await visit.wallet.auditTrail(msisdn, limit: 10_000)
        } else {
            entries = try await visit.wallet.auditTrail(
                actor: actor.isEmpty ? nil : actor, actionPrefix: action.isEmpty ? nil : action, from: DeskFormat.day(from),
                to: DeskFormat.day(to)?.addingTimeInterval(86_400), limit: 200
            )
        }
        let filtered = entries.filter { entry in
            (actor.isEmpty || entry.actor == actor) && (action.isEmpty || entry.action.hasPrefix(action))
                && (from.isEmpty || entry.at >= DeskFormat.day(from)!) && (to.isEmpty || entry.at < DeskFormat.day(to)!.addingTimeInterval(86_400))
        }
        values["entries"] = filtered.prefix(200).map(Self.auditRow)
        return try self.render("audit", title: "Audit trail", visit: visit, current: "/desk/audit", values)
    }
}
