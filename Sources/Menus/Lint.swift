
extension MenuGraph {
    /// Checks the journeys against the gateway's action registry. Empty means clean; the gateway
    /// refuses to start otherwise.
    /// `hopDeadlineMilliseconds`: the longest an `http` action may take, retries included (the
    /// gateway passes `HOP_DEADLINE_MS`). `backendVariables`: which variables a backend's `env:`
    /// may name (the gateway passes `BACKEND_ENV_ALLOW` and its own settings).
    public func lint(actions: [ActionSpec], hopDeadlineMilliseconds: Int = 4000, backendVariables: BackendVariables = BackendVariables()) -> [LintProblem] {
        var linter = Linter(
            graph: self, actions: Dictionary(actions.map { ($0.name, $0) }) { first, _ in first }, hopDeadline: hopDeadlineMilliseconds,
            backendVariables: backendVariables)
        linter.run()
        return linter.problems.sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }
}

private struct Linter {
    let graph: MenuGraph
    let actions: [String: ActionSpec]
    let hopDeadline: Int
    let backendVariables: BackendVariables
    var problems: [LintProblem] = []
    var document: MenuDocument { self.graph.document }

    mutating func report(_ location: String, _ message: String) {
        self.problems.append(LintProblem(location: location, message: message))
    }

    mutating func run() {
        self.checkTargets()
        self.checkReachability()
        self.checkDeadEnds()
        self.checkOptions()
        self.checkActions()
        self.checkTranslations()
        self.checkVariablesAndSecrets()
        self.checkLengths()
        self.checkSMS()
        self.checkTariffs()
        self.checkTiers()
        self.checkShortcuts()
        self.checkBackends()
        self.checkLists()
    }

    // MARK: Dial-in shortcuts

    mutating func checkShortcuts() {
        // Variables starting with `_` are the engine's own (a dialled shortcut waits in one).
        for (id, screen) in self.document.screens.sorted(by: { $0.key < $1.key }) {
            let names = [screen.variable].compactMap { $0 } + (screen.options ?? []).flatMap { ($0.set ?? [:]).keys.sorted() }
            for name in names where name.hasPrefix("_") { self.report(id, "variable \(name) starts with _, which the engine reserves") }
        }
        var seen: [String: Int] = [:]
        for (index, shortcut) in (self.document.shortcuts ?? []).enumerated() {
            let location = "shortcuts[\(index)]"
            guard let segments = shortcut.segments else {
                self.report(location, "dial must be up to 8 *-separated segments, each digits or {an input screen} (got \(shortcut.dial))")
                continue
            }
            if let first = seen[shortcut.dial] { self.report(location, "dial \(shortcut.dial) is also shortcuts[\(first)]'s: only the first would ever open") }
            seen[shortcut.dial] = seen[shortcut.dial] ?? index
            if self.graph.screen(shortcut.screen) == nil { self.report(location, "screen \(shortcut.screen) does not exist") }
            if shortcut.screen == self.graph.home { self.report(location, "opens the home screen, as the bare code does") }
            // The digits in the dial are what the user would type on these screens: each must
            // check them with a validator, and none may hold a secret (a PIN must never be dialled).
            for case .input(let id) in segments {
                guard let screen = self.graph.screen(id), screen.type == .input, screen.validator != nil, screen.variable != nil else {
                    self.report(location, "{\(id)} must be an input screen with a validator")
                    continue
                }
                if screen.secret == true { self.report(location, "{\(id)} holds a secret: a PIN is never dialled") }
            }
        }
    }

    // MARK: Tariffs and tiers

    /// The action that makes each kind of movement a tariff may charge.
    static let tariffActions = ["p2p": "wallet.send", "withdrawal": "mpesa.withdraw"]

    mutating func checkTariffs() {
        for (kind, bands) in (self.document.tariffs ?? [:]).sorted(by: { $0.key < $1.key }) {
            let location = "tariffs.\(kind)"
            guard Tariff.kinds.contains(kind) else {
                self.report(location, "fees on \(kind) are not supported (known: \(Tariff.kinds.sorted().joined(separator: ", ")))")
                continue
            }
            guard !bands.isEmpty else {
                self.report(location, "a tariff needs at least one band")
                continue
            }
            let action = Self.tariffActions[kind] ?? ""
            let amounts = self.amountRanges(for: action)
            // The smallest amount the first band can meet: the lowest any validator lets through.
            var previous = max(0, (amounts.map(\.1).min() ?? 1) - 1)
            for (index, band) in bands.enumerated() {
                if band.upTo <= previous || band.upTo > 100_000_000 {
                    self.report(location, "band \(index + 1): upTo must rise from band to band, within 1 to 100,000,000 (got \(band.upTo) after \(previous))")
                }
                // The smallest amount of the band is previous + 1: a fee must be less than it.
                if band.fee < 0 || band.fee > previous {
                    self.report(location, "band \(index + 1): the fee \(band.fee) must be from 0 to less than the band's smallest amount (\(previous + 1))")
                }
                previous = max(previous, band.upTo)
            }
            // Every amount the menus or SMS commands let through to the action has a fee.
            for (where_, _, largest) in amounts where largest > previous {
                self.report(location, "\(where_) allows amounts up to \(largest), above the last band (\(previous))")
            }
        }
    }

    /// Where each amount passed to `action` comes from, with the smallest and largest whole-shilling
    /// amounts its validator allows.
    func amountRanges(for action: String) -> [(String, Int, Int)] {
        var result: [(String, Int, Int)] = []
        for (_, screen) in self.document.screens where screen.type == .action && screen.action == action {
            guard let template = screen.arguments?["amount"], template.hasPrefix("{"), template.hasSuffix("}") else { continue }
            let variable = String(template.dropFirst().dropLast())
            for (inputID, input) in self.document.screens where input.type == .input && input.variable == variable {
                if case .amount(let min, let max) = input.validator { result.append((inputID, min, max)) }
            }
        }
        for command in self.document.sms?.commands ?? [] where command.action == action {
            guard let template = command.actionArguments?["amount"], template.hasPrefix("{"), template.hasSuffix("}") else { continue }
            let variable = String(template.dropFirst().dropLast())
            for argument in command.arguments ?? [] where argument.variable == variable {
                if case .amount(let min, let max) = argument.validator { result.append(("sms.\(command.name)", min, max)) }
            }
        }
        return result.sorted { $0.0 < $1.0 }
    }

    mutating func checkTiers() {
        // The fee screens name a kind the tariff knows.
        for (id, screen) in self.document.screens where screen.type == .action && screen.action == "wallet.fee" {
            let kind = screen.arguments?["kind"] ?? ""
            if !Tariff.kinds.contains(kind) { self.report(id, "wallet.fee's kind must be one of \(Tariff.kinds.sorted().joined(separator: ", ")) (got \(kind))") }
        }
        guard let tiers = self.document.tiers else { return }
        if tiers.levels[tiers.default] == nil { self.report("tiers.default", "tier \(tiers.default) is not among the levels") }
        for (name, limits) in tiers.levels.sorted(by: { $0.key < $1.key }) {
            let location = "tiers.levels.\(name)"
            if name.range(of: "^[a-z][a-z0-9_]{0,29}$", options: .regularExpression) == nil {
                self.report(location, "a tier name is 1 to 30 lowercase letters, digits or _, starting with a letter")
            }
            let ceiling = 100_000_000
            if !(1...ceiling).contains(limits.perTransaction) || !(1...ceiling).contains(limits.daily)
                || !(1...ceiling).contains(limits.maxBalance ?? 1)
            {
                self.report(location, "limits must be from 1 to \(ceiling) shillings")
            }
            if limits.daily < limits.perTransaction { self.report(location, "daily (\(limits.daily)) is below perTransaction (\(limits.perTransaction))") }
            if let maxBalance = limits.maxBalance, maxBalance < limits.perTransaction {
                self.report(location, "maxBalance (\(maxBalance)) is below perTransaction (\(limits.perTransaction))")
            }
        }
    }

    // MARK: Graph structure

    /// Every screen a screen can lead to, with what leads there.
    func edges(_ id: String, _ screen: MenuDocument.Screen) -> [(target: String, via: String)] {
        var edges: [(String, String)] = []
        for (index, option) in (screen.options ?? []).enumerated() { edges.append((option.next, "option \(index + 1)")) }
        if let next = screen.next { edges.append((next, "next")) }
        for (code, target) in (screen.errors ?? [:]).sorted(by: { $0.key < $1.key }) { edges.append((target, "error \(code)")) }
        for (index, route) in (screen.routes ?? []).enumerated() { edges.append((route.next, "route \(index + 1)")) }
        if let otherwise = screen.otherwise { edges.append((otherwise, "otherwise")) }
        if let mismatch = screen.mismatch { edges.append((mismatch, "mismatch")) }
        if let empty = screen.empty { edges.append((empty, "empty")) }
        return edges
    }

    mutating func checkTargets() {
        if self.document.screens[self.document.start] == nil { self.report("start", "screen \(self.document.start) does not exist") }
        if let home = self.document.home, self.document.screens[home] == nil { self.report("home", "screen \(home) does not exist") }
        for (id, screen) in self.document.screens {
            for edge in self.edges(id, screen) where self.document.screens[edge.target] == nil {
                self.report(id, "\(edge.via) leads to \(edge.target), which does not exist")
            }
        }
    }

    mutating func checkReachability() {
        var seen: Set<String> = []
        var queue = [self.document.start, self.graph.home]
        while let id = queue.popLast() {
            guard seen.insert(id).inserted, let screen = self.document.screens[id] else { continue }
            queue += self.edges(id, screen).map(\.target)
        }
        for id in self.document.screens.keys where !seen.contains(id) {
            self.report(id, "unreachable from the start screen")
        }
    }

    mutating func checkDeadEnds() {
        // Screens from which no end screen can be reached trap the user.
        var canFinish: Set<String> = Set(self.document.screens.filter { $0.value.type == .end }.keys)
        var changed = true
        while changed {
            changed = false
            for (id, screen) in self.document.screens where !canFinish.contains(id) {
                if self.edges(id, screen).contains(where: { canFinish.contains($0.target) }) || (screen.type == .menu && canFinish.contains(self.graph.home)) {
                    canFinish.insert(id)
                    changed = true
                }
            }
        }
        for (id, screen) in self.document.screens where screen.type != .end {
            if self.edges(id, screen).isEmpty {
                self.report(id, "dead end: a \(screen.type.rawValue) screen with nowhere to go")
            } else if !canFinish.contains(id) {
                self.report(id, "dead end: no end screen can be reached from here")
            }
        }
    }

    mutating func checkOptions() {
        for (id, screen) in self.document.screens where screen.type == .menu {
            let options = screen.options ?? []
            for language in self.graph.languages {
                var seen: [String: Int] = [:]
                for (index, option) in options.enumerated() {
                    let label = option.label.text(language, fallback: self.graph.defaultLanguage).trimmingCharacters(in: .whitespaces)
                    if label.isEmpty {
                        self.report(id, "option \(index + 1) has an empty label in \(language)")
                        continue
                    }
                    if let first = seen[label.lowercased()], option.when == nil || options[first].when == nil {
                        self.report(id, "options \(first + 1) and \(index + 1) have the same label \"\(label)\" in \(language)")
                    }
                    seen[label.lowercased()] = index
                }
            }
            for (index, option) in options.enumerated() where option.when?.isEmpty == true {
                self.report(id, "option \(index + 1) has a condition that tests nothing")
            }
        }
        for (id, screen) in self.document.screens where screen.type == .route {
            for (index, route) in (screen.routes ?? []).enumerated() where route.when.isEmpty {
                self.report(id, "route \(index + 1) has a condition that tests nothing")
            }
        }
    }

    // MARK: Actions

    mutating func checkActions() {
        for (id, screen) in self.document.screens where screen.type == .action {
            if screen.action == "http", let call = screen.http {
                self.checkHTTP(id, call, errors: Set((screen.errors ?? [:]).keys))
                if screen.arguments != nil { self.report(id, "an http action takes no arguments: its call names the variables it reads") }
                continue
            }
            if screen.http != nil { self.report(id, "http is only for action \"http\"") }
            self.checkAction(id, screen.action!, arguments: Set((screen.arguments ?? [:]).keys), errors: Set((screen.errors ?? [:]).keys))
        }
    }

    /// `errors` are the codes handled; `own` those mapped here (shared SMS replies are not "mapped here").
    mutating func checkAction(_ location: String, _ name: String, arguments: Set<String>, errors: Set<String>, own: Set<String>? = nil) {
        guard let spec = self.actions[name] else {
            self.report(location, "unknown action \(name)")
            return
        }
        for missing in spec.arguments.subtracting(arguments).sorted() {
            self.report(location, "action \(name) needs argument \(missing)")
        }
        for extra in arguments.subtracting(spec.arguments).sorted() {
            self.report(location, "action \(name) takes no argument \(extra)")
        }
        if !errors.contains("*") {
            for code in spec.errors.subtracting(errors).sorted() {
                self.report(location, "error \(code) of \(name) is not mapped")
            }
        }
        for code in (own ?? errors).subtracting(spec.errors).subtracting(["*"]).sorted() {
            self.report(location, "error \(code) is mapped but \(name) never fails with it")
        }
    }

    // MARK: Texts

    mutating func checkTranslations() {
        let languages = self.graph.languages
        func check(_ text: LocalizedText?, _ location: String, _ what: String) {
            guard let text else { return }
            for language in text.missing(languages) { self.report(location, "\(what) has no \(language) translation") }
        }
        for (id, screen) in self.document.screens {
            check(screen.text, id, "text")
            check(screen.error, id, "error text")
            for (index, option) in (screen.options ?? []).enumerated() { check(option.label, id, "option \(index + 1)") }
            if screen.type == .input, screen.error == nil { self.report(id, "input has no error text") }
        }
        for (name, text) in self.document.settings.texts ?? [:] { check(text, "settings.texts.\(name)", "text") }
        if let sms = self.document.sms {
            check(sms.help, "sms", "help")
            for (code, text) in sms.errors ?? [:] { check(text, "sms", "error \(code)") }
            for command in sms.commands {
                check(command.reply, "sms.\(command.name)", "reply")
                check(command.usage, "sms.\(command.name)", "usage")
                for (code, text) in command.errors ?? [:] { check(text, "sms.\(command.name)", "error \(code)") }
                for language in languages where (command.keywords[language] ?? []).isEmpty {
                    self.report("sms.\(command.name)", "has no \(language) keyword")
                }
            }
        }
    }

    // MARK: Variables and secrets

    /// Secret input variables: the screens that ask for each.
    var secretInputs: [String: [String]] {
        Dictionary(
            grouping: self.document.screens.filter { $0.value.type == .input && $0.value.secret == true }.map { ($0.value.variable!, $0.key) },
            by: \.0
        ).mapValues { $0.map(\.1).sorted() }
    }

    mutating func checkVariablesAndSecrets() {
        let secrets = self.secretInputs
        // May-analysis: the variables some path can have set on arrival at each screen.
        var arriving: [String: Set<String>] = [:]
        let context = Set((self.document.context ?? [:]).keys)
        arriving[self.document.start] = context
        arriving[self.graph.home, default: []].formUnion(context)
        var changed = true
        while changed {
            changed = false
            for (id, screen) in self.document.screens {
                guard let incoming = arriving[id] else { continue }
                for (target, added) in self.outgoingSets(id, screen) {
                    let next = incoming.union(added)
                    if !next.isSubset(of: arriving[target] ?? []) || arriving[target] == nil {
                        arriving[target, default: []].formUnion(next)
                        changed = true
                    }
                }
            }
        }

        for (id, screen) in self.document.screens {
            let known = arriving[id] ?? context
            var templates: [(String, Template)] = []
            for key in [id + ".text", id + ".error"] {
                for entry in self.graph.texts[key]?.all ?? [] { templates.append((key.hasSuffix(".error") ? "error text" : "text", entry.template)) }
            }
            for index in (screen.options ?? []).indices {
                for entry in self.graph.texts["\(id).option.\(index)"]?.all ?? [] { templates.append(("option \(index + 1)", entry.template)) }
            }
            if screen.http != nil {
                for key in self.graph.texts.keys where key.hasPrefix(id + ".http.") {
                    for entry in self.graph.texts[key]?.all ?? [] { templates.append(("call " + key.dropFirst(id.count + 6), entry.template)) }
                }
            }
            let itemFields = Set(screen.type == .list ? self.listSpec(screen.items ?? "")?.fields.keys.map { $0 } ?? [] : [])
            for entry in self.graph.texts[id + ".item"]?.all ?? [] {
                templates.append(("item", Template(parts: entry.template.parts.filter { part in
                    if case .variable(let name, _) = part { return !itemFields.contains(name) }
                    return true
                })))
            }
            // Secrets may appear only as arguments of the action right after the secret input.
            var allowedSecrets: Set<String> = []
            if screen.type == .action {
                for (variable, inputIDs) in secrets where inputIDs.contains(where: { self.document.screens[$0]!.next == id }) {
                    allowedSecrets.insert(variable)
                }
                for name in (screen.arguments ?? [:]).keys.sorted() {
                    if let template = self.graph.texts["\(id).argument.\(name)"]?.fallback { templates.append(("argument \(name)", template)) }
                }
            }
            var reported: Set<String> = []
            for (what, template) in templates {
                for variable in template.variables {
                    if secrets[variable] != nil {
                        if !allowedSecrets.contains(variable) || !what.hasPrefix("argument"), reported.insert("secret " + variable).inserted {
                            self.report(id, "secret \(variable) is used in \(what); secrets may only be arguments of the action right after their input")
                        }
                    } else if !known.contains(variable), reported.insert(variable).inserted {
                        self.report(id, "\(what) uses {\(variable)}, which no earlier screen or action can have set")
                    }
                }
            }
        }

        for (variable, inputIDs) in secrets {
            for inputID in inputIDs {
                let input = self.document.screens[inputID]!
                let nextIsAction = input.next.flatMap { self.document.screens[$0] }?.type == .action
                let confirmed = self.document.screens.values.contains { $0.confirms == variable }
                if !nextIsAction && !confirmed {
                    self.report(inputID, "secret \(variable) must be followed directly by the action that uses it")
                }
                if let confirms = input.confirms, secrets[confirms] == nil {
                    self.report(inputID, "confirms \(confirms), which is not a secret input")
                }
            }
        }
    }

    /// For each outgoing edge, the variables it sets.
    func outgoingSets(_ id: String, _ screen: MenuDocument.Screen) -> [(String, Set<String>)] {
        var result: [(String, Set<String>)] = []
        switch screen.type {
        case .menu:
            for option in screen.options ?? [] { result.append((option.next, Set((option.set ?? [:]).keys))) }
        case .input:
            result.append((screen.next!, screen.secret == true ? [] : [screen.variable!]))
            if let mismatch = screen.mismatch { result.append((mismatch, [])) }
        case .action:
            if let call = screen.http {
                result.append((screen.next!, Set((call.results ?? [:]).keys).union(call.list.map { [$0.variable] } ?? [])))
            } else {
                let spec = self.actions[screen.action!]
                result.append((screen.next!, Set((spec?.results ?? [:]).keys)))
            }
            let failures = screen.http == nil ? self.actions[screen.action!]?.errorResults ?? [:] : [:]
            for (code, target) in screen.errors ?? [:] { result.append((target, Set((failures[code] ?? [:]).keys))) }
        case .list:
            let fields = self.listSpec(screen.items ?? "")?.fields.keys.map { screen.variable! + "." + $0 } ?? []
            result.append((screen.next!, Set(fields)))
            if let empty = screen.empty { result.append((empty, [])) }
        case .route:
            for route in screen.routes ?? [] { result.append((route.next, [])) }
            result.append((screen.otherwise!, []))
        case .end:
            break
        }
        return result
    }

    // MARK: Worst-case lengths

    /// The longest value each variable can hold, and whether it can leave GSM-7.
    var variableSpecs: [String: MenuDocument.VariableSpec] {
        var specs: [String: MenuDocument.VariableSpec] = [:]
        func add(_ name: String, _ spec: MenuDocument.VariableSpec) {
            if let existing = specs[name] {
                specs[name] = .init(maxLength: max(existing.maxLength, spec.maxLength), unicode: (existing.unicode ?? false) || (spec.unicode ?? false))
            } else {
                specs[name] = spec
            }
        }
        for (name, spec) in self.document.context ?? [:] { add(name, spec) }
        for (name, spec) in self.document.variables ?? [:] { add(name, spec) }
        for screen in self.document.screens.values {
            if screen.type == .input, let validator = screen.validator {
                add(screen.variable!, .init(maxLength: validator.maxLength, unicode: !validator.isGSM7))
            }
            if screen.type == .action, let spec = self.actions[screen.action!] {
                for (name, result) in spec.results { add(name, result) }
                for values in spec.errorResults.values { for (name, result) in values { add(name, result) } }
            }
            for (name, value) in screen.http?.results ?? [:] { add(name, .init(maxLength: value.maxLength, unicode: value.unicode)) }
            if screen.type == .list, let list = self.listSpec(screen.items ?? "") {
                for (field, value) in list.fields { add(screen.variable! + "." + field, .init(maxLength: value.maxLength, unicode: value.unicode)) }
            }
            for option in screen.options ?? [] {
                for (name, value) in option.set ?? [:] { add(name, .init(maxLength: value.count, unicode: !GSM7.canEncode(value))) }
            }
        }
        return specs
    }

    mutating func checkLengths() {
        let specs = self.variableSpecs
        var worst: [String: String] = [:]
        for (name, spec) in specs {
            worst[name] = String(repeating: spec.unicode == true ? "字" : "W", count: spec.maxLength)
        }
        let worstAmount = { (length: Int) -> String in
            Template.formatAmount(Int(String(repeating: "9", count: min(max(length, 1), 17)))!)
        }
        func worstValues(_ template: Template) -> [String: String] {
            var values: [String: String] = [:]
            for part in template.parts {
                guard case .variable(let name, let formatter) = part else { continue }
                let base = worst[name] ?? ""
                switch formatter {
                case .plain: values[name] = base
                case .amount: values[name] = base.isEmpty ? "" : worstAmount(base.count)
                case .phone: values[name] = "0712345678"
                }
            }
            return values
        }
        func render(_ key: String, _ language: String) -> String {
            guard let template = self.graph.texts[key]?.template(language) else { return "" }
            let values = worstValues(template)
            return template.parts.map { part -> String in
                switch part {
                case .literal(let text): return text
                case .variable(let name, _): return values[name] ?? ""
                }
            }.joined()
        }
        let budget = self.graph.budget
        func check(_ id: String, _ language: String, _ what: String, _ text: String) {
            let measure = budget.measure(text)
            if !measure.fits {
                self.report(id, "\(what) can reach \(measure.cost) \(measure.encoding == .gsm7 ? "septets" : "UCS-2 characters") in \(language), over the budget of \(measure.limit)")
            }
        }
        for language in self.graph.languages {
            for (id, screen) in self.document.screens {
                switch screen.type {
                case .input:
                    let error = render(id + ".error", language)
                    check(id, language, "prompt with its error text", [error, render(id + ".text", language)].filter { !$0.isEmpty }.joined(separator: "\n"))
                case .end:
                    check(id, language, "text", render(id + ".text", language))
                case .menu:
                    let back = "\(self.graph.backKey). " + self.graph.systemText("back", language)
                    let more = "\(self.graph.moreKey). " + self.graph.systemText("more", language)
                    let notice = self.graph.systemText("invalidChoice", language)
                    let title = [notice, render(id + ".text", language)].filter { !$0.isEmpty }.joined(separator: "\n")
                    for (index, _) in (screen.options ?? []).enumerated() {
                        // Each option must fit on a page of its own; the engine pages the rest.
                        let line = "\(index + 1). " + render("\(id).option.\(index)", language)
                        check(id, language, "option \(index + 1) on a page", [line, more, back].joined(separator: "\n"))
                    }
                    if let first = screen.options?.indices.first {
                        let line = "\(first + 1). " + render("\(id).option.\(first)", language)
                        check(id, language, "title with the first option", [title, line, more, back].joined(separator: "\n"))
                    }
                case .list:
                    // The worst item: every field at its longest; it must fit on a page with the
                    // title, and alone on a later one.
                    guard let list = self.listSpec(screen.items ?? ""), let template = self.graph.texts[id + ".item"]?.template(language) else { break }
                    var values = worstValues(template)
                    for (field, value) in list.fields {
                        let base = String(repeating: value.unicode == true ? "字" : "W", count: value.maxLength)
                        values[field] = template.parts.contains(.variable(field, .amount)) ? worstAmount(value.maxLength) : base
                    }
                    let line = "\(list.maxItems). " + template.parts.map { part -> String in
                        switch part {
                        case .literal(let text): return text
                        case .variable(let name, let formatter): return formatter == .phone ? "0712345678" : values[name] ?? ""
                        }
                    }.joined()
                    let back = "\(self.graph.backKey). " + self.graph.systemText("back", language)
                    let more = "\(self.graph.moreKey). " + self.graph.systemText("more", language)
                    let notice = self.graph.systemText("invalidChoice", language)
                    let title = [notice, render(id + ".text", language)].filter { !$0.isEmpty }.joined(separator: "\n")
                    check(id, language, "the longest item on a page", [line, more, back].joined(separator: "\n"))
                    check(id, language, "title with the longest item", [title, line, more, back].joined(separator: "\n"))
                case .action, .route:
                    break
                }
            }
        }
    }

    // MARK: SMS

    /// Each notice's worst case (every parameter at its longest) in at most its allowed segments:
    /// one of 160 GSM-7 septets or 70 UCS-2 characters, or two of 153 / 67 when it says `segments: 2`.
    mutating func checkNotifications() {
        guard let notifications = self.document.sms?.notifications else { return }
        for (name, notice) in notifications {
            let location = "sms.notifications.\(name)"
            let allowed = notice.segments ?? 1
            guard (1...2).contains(allowed) else {
                self.report(location, "segments must be 1 or 2")
                continue
            }
            let budget = allowed == 1 ? TextBudget(gsm7: 160, ucs2: 70) : TextBudget(gsm7: 306, ucs2: 134)
            for language in self.graph.languages {
                guard let template = self.graph.texts[location]?.template(language) else { continue }
                var worst = ""
                for part in template.parts {
                    switch part {
                    case .literal(let text): worst += text
                    case .variable(let variable, let formatter):
                        guard let spec = notice.params?[variable] else {
                            self.report(location, "{\(variable)} has no entry in params (its longest value)")
                            continue
                        }
                        switch formatter {
                        case .plain: worst += String(repeating: spec.unicode == true ? "字" : "W", count: spec.maxLength)
                        case .amount: worst += Template.formatAmount(Int(String(repeating: "9", count: min(max(spec.maxLength, 1), 17)))!)
                        case .phone: worst += "0712345678"
                        }
                    }
                }
                let measure = budget.measure(worst)
                if !measure.fits {
                    self.report(
                        location,
                        "can reach \(measure.cost) \(measure.encoding == .gsm7 ? "septets" : "UCS-2 characters") in \(language), over \(allowed) segment\(allowed == 1 ? "" : "s") (\(measure.limit))"
                    )
                }
            }
        }
    }

    mutating func checkSMS() {
        self.checkNotifications()
        guard let sms = self.document.sms else { return }
        var keywords: [String: String] = [:]
        for command in sms.commands {
            let location = "sms.\(command.name)"
            for keyword in command.keywords.values.flatMap({ $0 }) {
                let upper = keyword.uppercased()
                if let other = keywords[upper], other != command.name {
                    self.report(location, "keyword \(keyword) is also a keyword of \(other)")
                }
                keywords[upper] = command.name
            }
            let own = Set((command.errors ?? [:]).keys)
            self.checkAction(
                location, command.action, arguments: Set((command.actionArguments ?? [:]).keys),
                errors: own.union((sms.errors ?? [:]).keys), own: own
            )
            let available = Set((command.arguments ?? []).map(\.variable)).union((self.document.context ?? [:]).keys)
            let secrets = Set((command.arguments ?? []).filter { $0.secret == true }.map(\.variable))
            let results = Set(self.actions[command.action]?.results.keys.map { $0 } ?? [])
            for (name, _) in command.actionArguments ?? [:] {
                for variable in self.graph.texts["\(location).argument.\(name)"]?.fallback.variables ?? [] where !available.contains(variable) {
                    self.report(location, "argument \(name) uses {\(variable)}, which the command does not have")
                }
            }
            var replies: [(String, String)] = [("\(location).reply", "reply"), ("\(location).usage", "usage")]
            replies += (command.errors ?? [:]).keys.map { ("\(location).errors.\($0)", "error \($0)") }
            for (key, what) in replies {
                for variable in Set(self.graph.texts[key]?.all.flatMap(\.template.variables) ?? []) {
                    if secrets.contains(variable) {
                        self.report(location, "secret \(variable) is used in \(what)")
                    } else if !available.contains(variable) && !(what == "reply" && results.contains(variable)) {
                        self.report(location, "\(what) uses {\(variable)}, which the command does not have")
                    }
                }
            }
        }
    }
}

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
