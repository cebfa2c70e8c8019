// menus.json's lint: every screen's worst case per language against the aggregators' page budgets, and SMS texts.

extension Linter {
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
                add(screen.variable!, .init(maxLength: validator.maxLength(in: self.graph.currency), unicode: !validator.isGSM7))
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

    /// Every screen's worst case, in every language: each variable at its longest, within the
    /// menus' page budget.
    mutating func checkLengths() {
        let worst = WorstCase(graph: self.graph, specs: self.variableSpecs)
        for language in self.graph.languages {
            for (id, screen) in self.document.screens {
                for (what, text) in self.worstPages(id, screen, language, worst) {
                    let measure = self.graph.budget.measure(text)
                    guard !measure.fits else { continue }
                    let unit = measure.encoding == .gsm7 ? "septets" : "UCS-2 characters"
                    self.report(id, "\(what) can reach \(measure.cost) \(unit) in \(language), over the budget of \(measure.limit)")
                }
            }
        }
    }

    /// The pages a screen can show at their longest, each with what it is.
    func worstPages(_ id: String, _ screen: MenuDocument.Screen, _ language: String, _ worst: WorstCase) -> [(String, String)] {
        let lines = { (parts: [String]) in parts.filter { !$0.isEmpty }.joined(separator: "\n") }
        let back = "\(self.graph.backKey). " + self.graph.systemText("back", language)
        let more = "\(self.graph.moreKey). " + self.graph.systemText("more", language)
        let title = lines([self.graph.systemText("invalidChoice", language), worst.render(id + ".text", language)])
        switch screen.type {
        case .input:
            return [("prompt with its error text", lines([worst.render(id + ".error", language), worst.render(id + ".text", language)]))]
        case .end:
            return [("text", worst.render(id + ".text", language))]
        case .menu:
            // Each option must fit on a page of its own; the engine pages the rest.
            let options = (screen.options ?? []).indices.map { "\($0 + 1). " + worst.render("\(id).option.\($0)", language) }
            var pages = options.enumerated().map { ("option \($0.offset + 1) on a page", lines([$0.element, more, back])) }
            if let first = options.first { pages.append(("title with the first option", lines([title, first, more, back]))) }
            return pages
        case .list:
            // The worst item: every field at its longest; it must fit on a page with the title,
            // and alone on a later one.
            guard let list = self.listSpec(screen.items ?? ""), let template = self.graph.texts[id + ".item"]?.template(language) else { return [] }
            let line = "\(list.maxItems). " + worst.item(template, fields: list.fields.mapValues { MenuDocument.VariableSpec(maxLength: $0.maxLength, unicode: $0.unicode) })
            return [("the longest item on a page", lines([line, more, back])), ("title with the longest item", lines([title, line, more, back]))]
        case .action, .route:
            return []
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
                    case .variable(let variable, _) where Market.constantNames.contains(variable): worst += self.graph.market.constant(variable)!
                    case .variable(let variable, let formatter):
                        guard let spec = notice.params?[variable] else {
                            self.report(location, "{\(variable)} has no entry in params (its longest value)")
                            continue
                        }
                        switch formatter {
                        case .plain: worst += String(repeating: spec.unicode == true ? "字" : "W", count: spec.maxLength)
                        case .amount: worst += self.graph.currency.widest(digits: spec.maxLength)
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

/// Texts at their longest: every variable at its declared maximum length.
struct WorstCase {
    let graph: MenuGraph
    let worst: [String: String]

    init(graph: MenuGraph, specs: [String: MenuDocument.VariableSpec]) {
        self.graph = graph
        self.worst = specs.mapValues { Self.longest($0) }
    }

    static func longest(_ spec: MenuDocument.VariableSpec) -> String {
        String(repeating: spec.unicode == true ? "字" : "W", count: spec.maxLength)
    }

    /// The widest amount of `length` digits of minor units, as the deployment's currency shows it.
    func amount(_ length: Int) -> String { self.graph.currency.widest(digits: length) }

    /// The template's variables at their longest, as each formatter shows them.
    func values(_ template: Template) -> [String: String] {
        var values: [String: String] = [:]
        for part in template.parts {
            guard case .variable(let name, let formatter) = part else { continue }
            let base = self.worst[name] ?? ""
            switch formatter {
            case .plain: values[name] = base
            case .amount: values[name] = base.isEmpty ? "" : self.amount(base.count)
            case .phone: values[name] = "0712345678"
            }
        }
        return values
    }

    func fill(_ template: Template, _ values: [String: String]) -> String {
        template.parts.map { part -> String in
            switch part {
            case .literal(let text): return text
            case .variable(let name, _) where Market.constantNames.contains(name): return self.graph.market.constant(name)!
            case .variable(let name, let formatter): return formatter == .phone ? "0712345678" : values[name] ?? ""
            }
        }.joined()
    }

    /// The text `key` in `language` at its longest; empty when there is none.
    func render(_ key: String, _ language: String) -> String {
        guard let template = self.graph.texts[key]?.template(language) else { return "" }
        return self.fill(template, self.values(template))
    }

    /// A list item at its longest: the list's own fields at their maximum lengths.
    func item(_ template: Template, fields: [String: MenuDocument.VariableSpec]) -> String {
        var values = self.values(template)
        for (field, value) in fields {
            values[field] = template.parts.contains(.variable(field, .amount)) ? self.amount(value.maxLength) : Self.longest(value)
        }
        return self.fill(template, values)
    }
}
