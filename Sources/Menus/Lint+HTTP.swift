// menus.json's lint: `http` actions against the operator's backends, and the lists they fill.

extension Linter {
    // MARK: HTTP actions and lists

    /// The `list` of the `http` action that fills `variable`.
    func listSpec(_ variable: String) -> MenuDocument.HTTPList? {
        self.document.screens.values.lazy.compactMap { $0.http?.list }.first { $0.variable == variable }
    }

    mutating func checkHTTP(_ id: String, _ call: MenuDocument.HTTPCall, errors: Set<String>) {
        if self.document.backends?[call.backend] == nil { self.report(id, "backend \(call.backend) is not among backends") }
        if !["GET", "POST", "PUT", "DELETE"].contains(call.method) { self.report(id, "method must be GET, POST, PUT or DELETE (got \(call.method))") }
        if !call.path.hasPrefix("/") { self.report(id, "path must start with /") }
        if ["POST", "PUT"].contains(call.method) == false, call.body != nil { self.report(id, "a \(call.method) has no body") }
        let retries = call.retries ?? 0
        if retries > 0 && !call.isIdempotent { self.report(id, "retries only for GET, PUT and DELETE: a \(call.method) may have reached the backend") }
        if !(0...3).contains(retries) { self.report(id, "retries must be from 0 to 3") }
        // Bounded before it is multiplied: the numbers are the file's.
        let (total, overflow) = call.timeoutMs.multipliedReportingOverflow(by: 1 + min(max(0, retries), 3))
        if call.timeoutMs < 100 || overflow || total > self.hopDeadline - 250 {
            self.report(id, "timeoutMs \(call.timeoutMs) with \(retries) retries must stay from 100 ms to under the hop deadline (\(self.hopDeadline) ms, less 250 for the rest of the hop)")
        }
        if let seconds = call.cacheSeconds {
            if call.method != "GET" { self.report(id, "only a GET's answer may be cached") }
            if !(1...3600).contains(seconds) { self.report(id, "cacheSeconds must be from 1 to 3600") }
        }
        func checkValue(_ where_: String, _ value: MenuDocument.HTTPValue, inItem: Bool) {
            guard let path = JSONPath(value.path) else { return self.report(id, "\(where_): \(value.path) is not a path like $.jobs[*].title") }
            if path.isList { self.report(id, "\(where_): \(value.path) selects a list; a value needs one") }
            if !(1...Validator.maximumLength).contains(value.maxLength) { self.report(id, "\(where_): maxLength must be from 1 to \(Validator.maximumLength)") }
            _ = inItem
        }
        for (name, value) in (call.results ?? [:]).sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("_") { self.report(id, "variable \(name) starts with _, which the engine reserves") }
            checkValue("result \(name)", value, inItem: false)
        }
        if let list = call.list {
            if JSONPath(list.path)?.isList != true { self.report(id, "list path \(list.path) must select a list, like $.jobs[*]") }
            if !(1...50).contains(list.maxItems) { self.report(id, "list maxItems must be from 1 to 50") }
            if list.fields.isEmpty { self.report(id, "a list needs at least one field") }
            for (name, value) in list.fields.sorted(by: { $0.key < $1.key }) { checkValue("list field \(name)", value, inItem: true) }
            let others = self.document.screens.filter { $0.key != id && $0.value.http?.list?.variable == list.variable }
            if let other = others.keys.sorted().first, self.document.screens[other]?.http?.list != list {
                self.report(id, "list \(list.variable) is also filled by \(other) with other fields: a list screen must know one shape")
            }
        }
        if let field = call.resultField {
            if JSONPath(field) == nil || JSONPath(field)?.isList == true { self.report(id, "resultField \(field) is not a path to one value") }
            if (call.codes ?? []).isEmpty { self.report(id, "resultField needs codes: the result codes it may hold") }
        }
        for (status, code) in (call.status ?? [:]).sorted(by: { $0.key < $1.key }) {
            let valid = ["4xx", "5xx"].contains(status) || (Int(status).map { (300...599).contains($0) } ?? false)
            if !valid { self.report(id, "status \(status) must be an HTTP status from 300 to 599, 4xx or 5xx") }
            if code.isEmpty { self.report(id, "status \(status) maps to an empty code") }
        }
        let codes = call.failureCodes
        if !errors.contains("*") {
            for code in codes.subtracting(errors).sorted() { self.report(id, "result \(code) of the call has no screen in errors") }
        }
        for code in errors.subtracting(codes).subtracting(["*"]).sorted() { self.report(id, "error \(code) is mapped but the call never gives it") }
        if let notice = call.notice, self.document.sms?.notifications?[notice.template] == nil {
            self.report(id, "notice \(notice.template) is not among sms.notifications")
        }
    }

    /// Backends: their URL and headers come from the environment, by `env:NAME`.
    mutating func checkBackends() {
        func isReference(_ value: String) -> Bool {
            guard value.hasPrefix("env:") else { return false }
            let name = value.dropFirst(4)
            return !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }
        }
        for (name, backend) in (self.document.backends ?? [:]).sorted(by: { $0.key < $1.key }) {
            let location = "backends.\(name)"
            if !isReference(backend.url) {
                self.report(location, "url must be env:NAME (the URL comes from the environment)")
            } else if let refusal = self.backendVariables.refusal(String(backend.url.dropFirst(4))) {
                self.report(location, "url: \(refusal)")
            }
            for (header, value) in (backend.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                if !isReference(value) {
                    self.report(location, "header \(header) must be env:NAME: a secret is never written in menus.json")
                } else if let refusal = self.backendVariables.refusal(String(value.dropFirst(4))) {
                    self.report(location, "header \(header): \(refusal)")
                }
            }
            if let breaker = backend.breaker, !(1...100).contains(breaker.failures) || !(1...3600).contains(breaker.openSeconds) {
                self.report(location, "breaker needs failures from 1 to 100 and openSeconds from 1 to 3600")
            }
        }
    }

    mutating func checkLists() {
        for (id, screen) in self.document.screens where screen.type == .list {
            guard let items = screen.items, self.listSpec(items) != nil else {
                self.report(id, "items \(screen.items ?? "") is no http action's list")
                continue
            }
            if screen.empty == nil { self.report(id, "a list needs empty: the screen shown when there is no item") }
            if screen.variable?.hasPrefix("_") == true { self.report(id, "variable \(screen.variable!) starts with _, which the engine reserves") }
        }
    }
}
