// menus.json's lint: translations, and the variables and secrets texts may show.
import Basics

extension Linter {
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

    /// May-analysis: the variables some path can have set on arrival at each screen (the
    /// context's at the start and at home, then what each edge sets, to a fixed point).
    func variablesArriving() -> (arriving: [String: Set<String>], context: Set<String>) {
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
        return (arriving, context)
    }

    mutating func checkVariablesAndSecrets() {
        let secrets = self.secretInputs
        let (arriving, context) = self.variablesArriving()
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
                }, market: entry.template.market)))
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
}

extension Linter {
    /// No text names a currency: amounts show the deployment's through `{…|amount}`, and a text that
    /// must name it says `{currency}`. A code written in (`Enter amount (GHS)`) would greet a
    /// Kenyan deployment in cedis.
    mutating func checkCurrencyCodes() {
        // Nor may a variable take a constant's name: its value would never show.
        for (id, screen) in self.document.screens.sorted(by: { $0.key < $1.key }) {
            let names = [screen.variable].compactMap { $0 } + (screen.options ?? []).flatMap { ($0.set ?? [:]).keys }
            for name in Set(names).intersection(Market.constantNames).sorted() {
                self.report(id, "sets {\(name)}, which is the deployment's own (CURRENCY, MOBILE_MONEY): choose another name")
            }
        }
        for (key, text) in self.graph.texts.sorted(by: { $0.key < $1.key }) {
            var named: Set<String> = []
            for entry in text.all {
                for part in entry.template.parts {
                    guard case .literal(let literal) = part else { continue }
                    for word in literal.split(whereSeparator: { !($0.isASCII && $0.isLetter) }) where word.count == 3 && Currency.table[String(word)] != nil {
                        named.insert(String(word))
                    }
                }
            }
            for code in named.sorted() {
                self.report(key, "names the currency \(code): write {currency} (the deployment's, CURRENCY) or show amounts with {…|amount}")
            }
        }
    }
}
