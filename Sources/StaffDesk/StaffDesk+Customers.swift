import Basics
import Foundation
import Hummingbird
import Postgres
import Wallet

/// Finding a customer, their page, and the changes support and finance make from it. A customer
/// is opened with a reason (kept in the session for that customer); each view of the page is
/// written to the audit trail with it, by the person, before anything is shown. Numbers are masked
/// unless the person asked to see one, which is audited too.
extension StaffDesk {
    func registerCustomers<Context: RequestContext>(_ desk: RouterGroup<Context>) {
        desk.get("/search") { request, _ in
            try await self.page(request, .viewCustomers) { visit in try await self.search(request, visit) }
        }
        desk.post("/customers/:id/open") { request, context in
            try await self.post(request, .viewCustomers) { visit, form in
                let id = context.parameters.get("id", as: Int64.self) ?? 0
                switch Self.action(form) {
                case .failure(let error): return self.redirect("/desk/search", &visit, problem: error.description)
                case .success(let action):
                    // A session keeps the customers opened in it, a bounded few.
                    if visit.session.cases.count >= 50 { visit.session.cases.removeAll() }
                    visit.session.cases[String(id)] = action.reason
                    return self.redirect("/desk/customers/\(id)", &visit)
                }
            }
        }
        desk.get("/customers/:id") { request, context in
            try await self.page(request, .viewCustomers) { visit in
                try await self.customerPage(context.parameters.get("id", as: Int64.self) ?? 0, &visit)
            }
        }
        desk.post("/customers/:id/reveal") { request, context in
            try await self.change(request, context, .viewCustomers) { visit, msisdn, action in
                try await visit.wallet.recordRead(msisdn, "customer.viewed", shown: "the number, unmasked", by: action)
                visit.session.revealed.insert(String(context.parameters.get("id", as: Int64.self) ?? 0))
                return nil
            }
        }
        desk.post("/customers/:id/unlock") { request, context in
            try await self.change(request, context, .unlock) { visit, msisdn, action in
                try await visit.wallet.unlockPIN(msisdn, by: action) ? "PIN unlocked: the customer can dial again." : "Not registered."
            }
        }
        desk.post("/customers/:id/block") { request, context in
            try await self.change(request, context, .block) { visit, msisdn, action in
                Self.outcome(try await visit.wallet.block(msisdn, by: action), done: "Blocked: only the balance works until unblocked.", already: "Already blocked.")
            }
        }
        desk.post("/customers/:id/unblock") { request, context in
            try await self.change(request, context, .block) { visit, msisdn, action in
                Self.outcome(try await visit.wallet.unblock(msisdn, by: action), done: "Unblocked.", already: "Not blocked.")
            }
        }
        desk.post("/customers/:id/reset-pin") { request, context in
            try await self.change(request, context, .askPINReset) { visit, msisdn, action in
                let request = try await visit.wallet.requestPINReset(msisdn, by: action)
                return "PIN reset asked for (request #\(request.id)): another member of support or an administrator must approve it."
            }
        }
        desk.post("/customers/:id/adjust") { request, context in
            try await self.change(request, context, .askCorrection) { visit, msisdn, action, form in
                guard let amount = Amount(typed: form["amount"] ?? "", in: self.settings.currency) else {
                    throw WalletError.invalidArgument("the amount must be in \(self.settings.currency.code), more than zero, e.g. 500 or 1250.50")
                }
                guard let direction = LedgerRequest.Direction(rawValue: form["direction"] ?? "") else { throw WalletError.invalidArgument("choose a direction") }
                let request = try await visit.wallet.requestAdjustment(msisdn, amount: amount, direction: direction, by: action)
                return "Adjustment of \(DeskFormat.money(amount.cents, self.settings.currency)) asked for (request #\(request.id)): a finance approver must decide it."
            }
        }
        desk.post("/customers/:id/reverse") { request, context in
            try await self.change(request, context, .askCorrection) { visit, _, action, form in
                let reference = String((form["transfer"] ?? "").trimmingCharacters(in: .whitespaces).prefix(100))
                let request = try await visit.wallet.requestReversal(of: reference, by: action)
                return "Reversal asked for (request #\(request.id)): a finance approver must decide it."
            }
        }
    }

    static func outcome(_ outcome: DeskOutcome, done: String, already: String) -> String {
        switch outcome {
        case .changed: return done
        case .unchanged: return already
        case .notRegistered: return "Not registered."
        }
    }

    /// A change to the customer `:id` with the form's reason, through the wallet acting as the
    /// person; back to the customer's page with what it did, or the refusal in the wallet's words.
    func change<Context: RequestContext>(
        _ request: Request, _ context: Context, _ permission: DeskPermission,
        _ body: @escaping (inout Visit, MSISDN, OperatorAction, [String: String]) async throws -> String?
    ) async throws -> Response {
        let id = context.parameters.get("id", as: Int64.self) ?? 0
        return try await self.post(request, permission) { visit, form in
            let page = "/desk/customers/\(id)"
            guard let msisdn = try await self.msisdn(of: id, visit) else { return self.redirect("/desk/search", &visit, problem: "No such customer.") }
            switch Self.action(form) {
            case .failure(let error): return self.redirect(page, &visit, problem: error.description)
            case .success(let action):
                do {
                    let notice = try await body(&visit, msisdn, action, form)
                    return self.redirect(page, &visit, notice: notice)
                } catch {
                    guard let words = Self.words(error) else { throw error }
                    return self.redirect(page, &visit, problem: words)
                }
            }
        }
    }

    func change<Context: RequestContext>(
        _ request: Request, _ context: Context, _ permission: DeskPermission, _ body: @escaping (inout Visit, MSISDN, OperatorAction) async throws -> String?
    ) async throws -> Response {
        try await self.change(request, context, permission) { visit, msisdn, action, _ in try await body(&visit, msisdn, action) }
    }

    /// The number of customer `id`, read as the person.
    func msisdn(of id: Int64, _ visit: Visit) async throws -> MSISDN? {
        try await visit.wallet.postgres.query("SELECT msisdn FROM customers WHERE id = \(id)").single().flatMap { MSISDN(try $0.decode(String.self, column: 0)) }
    }

    func search(_ request: Request, _ visit: Visit) async throws -> Response {
        let query = String((request.uri.queryParameters.get("q") ?? "").trimmingCharacters(in: .whitespaces).prefix(100))
        var values: [String: Any] = ["query": query, "byName": visit.role.may(.searchByName), "searched": !query.isEmpty]
        var rows: PostgresRows?
        let select = "SELECT id, msisdn, status, created_at FROM customers"
        if let msisdn = MSISDN(parsing: query, plan: self.settings.plan) {
            rows = try await visit.wallet.postgres.query("\(unescaped: select) WHERE msisdn = \(msisdn.value)")
        } else if !query.isEmpty, visit.role.may(.searchByName), let personalData = visit.wallet.personalData {
            let index = try await personalData.blindIndex(query)
            if !index.isEmpty {
                rows = try await visit.wallet.postgres.query(
                    "\(unescaped: select) WHERE name_index @> \(Wallet.byteaArray(index))::bytea[] ORDER BY id LIMIT 50")
            }
        }
        values["results"] = try (rows.map(Array.init) ?? []).map { row -> [String: Any] in
            let (id, number, status, at) = try row.decode((Int64, String, String, Date).self)
            return ["id": id, "number": MSISDN.masked(number), "status": status, "registered": DeskFormat.time(at)]
        }
        return try self.render("search", title: "Find a customer", visit: visit, current: "/desk/search", values)
    }

    /// The customer's page: the read is audited (by the wallet, as the person) before it is shown.
    func customerPage(_ id: Int64, _ visit: inout Visit) async throws -> Response {
        guard let reason = visit.session.cases[String(id)] else {
            return self.redirect("/desk/search", &visit, problem: "Open a customer from the search with a reason first.")
        }
        guard let msisdn = try await self.msisdn(of: id, visit), let overview = try await visit.wallet.overview(msisdn, by: try OperatorAction(reason: reason))
        else { return try self.refusal(.notFound, "No such customer.", visit: visit) }
        let revealed = visit.session.revealed.contains(String(id))
        let customer = overview.customer
        let locked = customer.isLocked()
        let role = visit.role
        var values: [String: Any] = [
            "id": id, "name": overview.name ?? "(name erased)", "number": revealed ? msisdn.value : msisdn.masked, "revealed": revealed,
            "caseReason": reason, "status": customer.status.rawValue, "tier": customer.tier ?? "default", "language": customer.language,
            "pinState": customer.pinResetRequired ? "reset approved: a new PIN is set at the next dial" : locked ? "locked until \(DeskFormat.time(customer.lockedUntil))" : overview.locksInARow >= 3 ? "locked until unlocked" : "usable",
            "failedPINAttempts": overview.failedPINAttempts, "locksInARow": overview.locksInARow, "registered": DeskFormat.time(overview.registeredAt),
            "balances": [
                "main": DeskFormat.money(overview.balances.main.cents, self.settings.currency), "savings": DeskFormat.money(overview.balances.savings.cents, self.settings.currency),
                "held": DeskFormat.money(overview.balances.held.cents, self.settings.currency), "available": DeskFormat.money(overview.balances.available.cents, self.settings.currency),
            ],
            "holds": overview.holds.map {
                ["amount": DeskFormat.money($0.amount.cents, self.settings.currency), "payout": $0.payout, "status": $0.status, "since": DeskFormat.time($0.since)] as [String: Any]
            },
            "movements": overview.movements.map { entry -> [String: Any] in
                [
                    "at": DeskFormat.time(entry.at), "kind": entry.kind, "direction": "\(entry.direction)",
                    "amount": DeskFormat.money(entry.amount.cents, self.settings.currency), "counterparty": entry.counterparty?.masked ?? "", "key": DeskFormat.maskingNumbers(entry.key),
                ]
            },
            "mayUnlock": role.may(.unlock) && (locked || overview.locksInARow > 0 || overview.failedPINAttempts > 0),
            "mayBlock": role.may(.block) && customer.status != .closed, "blockAction": customer.status == .suspended ? "unblock" : "block",
            "blockLabel": customer.status == .suspended ? "Unblock" : "Block",
            "mayAskPINReset": role.may(.askPINReset) && !customer.pinResetRequired, "mayAskCorrection": role.may(.askCorrection),
        ]
        values["hasActions"] = ["mayUnlock", "mayBlock", "mayAskPINReset", "mayAskCorrection"].contains { values[$0] as? Bool == true }
        try await self.history(customer, msisdn, visit, into: &values)
        return try self.render("customer", title: msisdn.masked, visit: visit, current: "/desk/search", values)
    }

    /// Deposits, payouts, messages and audit entries about the customer, newest first.
    func history(_ customer: Wallet.Customer, _ msisdn: MSISDN, _ visit: Visit, into values: inout [String: Any]) async throws {
        let postgres = visit.wallet.postgres
        values["deposits"] = try await postgres.query(
            "SELECT created_at, amount, status, coalesce(receipt, '') FROM deposits WHERE customer_id = \(customer.id) ORDER BY id DESC LIMIT 20"
        ).map { row -> [String: Any] in
            let (at, amount, status, receipt) = try row.decode((Date, Int64, String, String).self)
            return ["at": DeskFormat.time(at), "amount": DeskFormat.money(amount, self.settings.currency), "status": status, "receipt": DeskFormat.maskingNumbers(receipt)]
        }
        values["payouts"] = try await postgres.query(
            "SELECT created_at, amount, status, id FROM payouts WHERE customer_id = \(customer.id) ORDER BY created_at DESC LIMIT 20"
        ).map { row -> [String: Any] in
            let (at, amount, status, reference) = try row.decode((Date, Int64, String, String).self)
            return ["at": DeskFormat.time(at), "amount": DeskFormat.money(amount, self.settings.currency), "status": status, "reference": reference]
        }
        values["messages"] = try await postgres.query(
            """
            SELECT created_at, template, status, coalesce(delivery_status, '') FROM outbox
            WHERE subject = \(customer.subject.uuidString)::uuid OR recipient = \(msisdn.value) ORDER BY id DESC LIMIT 20
            """
        ).map { row -> [String: Any] in
            let (at, template, status, delivery) = try row.decode((Date, String, String, String).self)
            return ["at": DeskFormat.time(at), "template": template, "status": status, "delivery": delivery]
        }
        values["entries"] = try await visit.wallet.auditTrail(msisdn, limit: 50).map(Self.auditRow)
    }

    static func auditRow(_ entry: AuditEntry) -> [String: Any] {
        let details = [entry.before.map { "before \($0)" }, entry.after.map { "after \($0)" }].compactMap { $0 }.joined(separator: " · ")
        return [
            "at": DeskFormat.time(entry.at), "actor": entry.actor, "action": entry.action, "number": entry.msisdn.map(MSISDN.masked) ?? "",
            "reason": entry.reason ?? "", "details": DeskFormat.maskingNumbers(String(details.prefix(600))),
        ]
    }
}
