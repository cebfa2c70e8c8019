import Basics

/// Walks a ``MenuGraph``: pure, synchronous, no I/O. The host (the gateway) keeps the state,
/// runs the actions, and shows the pages.
public struct Engine: Sendable {
    public let graph: MenuGraph
    private let sealer: (any SecretSealer)?
    /// Whose numbers a phone-number input accepts.
    public let plan: NumberingPlan

    /// Route and action chains longer than this in one hop are a loop in the file.
    static let maximumTransitions = 32

    public init(graph: MenuGraph, sealer: (any SecretSealer)? = nil, plan: NumberingPlan = .kenya) {
        self.graph = graph
        self.sealer = sealer
        self.plan = plan
    }

    /// Starts a session with the host's context variables (e.g. `msisdn`). With `extension` (the
    /// digits dialled past the service code, ``Shortcut/extensionSegments(of:serviceCodes:)``), a
    /// matching shortcut opens its screen when the session first reaches home.
    public func start(variables: [String: String] = [:], language: String? = nil, extension segments: [Substring] = []) -> Step {
        let chosen = language.flatMap { self.graph.languages.contains($0) ? $0 : nil } ?? self.graph.defaultLanguage
        var state = SessionState(screen: self.graph.document.start, variables: variables, language: chosen)
        if !segments.isEmpty {
            // An extension no shortcut knows opens the home screen, as the bare code does.
            for (index, shortcut) in (self.graph.document.shortcuts ?? []).enumerated() {
                guard let typed = shortcut.match(segments) else { continue }
                state.variables[Self.pendingShortcut] = String(index)
                for (screen, value) in typed { state.variables[Self.pendingShortcut + "." + screen] = value }
                break
            }
        }
        return self.enter(self.graph.document.start, state, secrets: [:], transitions: 0)
    }

    /// Where a dialled shortcut waits for the session to reach home (reserved variable names: a
    /// menus.json variable cannot start with `_`).
    static let pendingShortcut = "_shortcut"

    /// The shortcut waiting in `state`: its values go through their input screens' validators, and
    /// its screen opens as if chosen from home; a value a screen refuses opens that screen with its
    /// error.
    private func takeShortcut(_ pending: String, _ state: SessionState, transitions: Int) -> Step {
        var state = state
        guard let index = Int(pending), let shortcut = self.graph.document.shortcuts?[safe: index] else { return self.failure(state) }
        var typed: [(screen: String, value: String)] = []
        for key in state.variables.keys.sorted() where key.hasPrefix(Self.pendingShortcut) {
            if key.count > Self.pendingShortcut.count + 1 { typed.append((String(key.dropFirst(Self.pendingShortcut.count + 1)), state.variables[key]!)) }
            state.variables[key] = nil
        }
        state.history.append(self.graph.home)
        let order = shortcut.segments?.compactMap { segment -> String? in
            if case .input(let screen) = segment { return screen }
            return nil
        } ?? []
        for screenID in order {
            guard let value = typed.first(where: { $0.screen == screenID })?.value, let screen = self.graph.screen(screenID), screen.type == .input,
                let validator = screen.validator, let variable = screen.variable
            else { return self.failure(state) }
            guard let normalised = validator.validate(value.trimmedOfSpaces, plan: self.plan, currency: self.graph.currency) else {
                let error = self.graph.compiled[screenID]?.error?.render(state.language, state.variables) ?? ""
                return self.enter(screenID, state, secrets: [:], transitions: transitions + 1, notice: error.isEmpty ? nil : error)
            }
            state.variables[variable] = normalised
        }
        return self.enter(shortcut.screen, state, secrets: [:], transitions: transitions + 1)
    }

    /// Applies the user's input on the screen waiting for it.
    public func advance(_ state: SessionState, input raw: String) -> Step {
        let input = raw.trimmedOfSpaces
        guard let screen = self.graph.screen(state.screen) else { return self.failure(state) }
        var state = state
        if input == self.graph.homeKey {
            state.history = []
            state.wrongInputs = 0
            return self.enter(self.graph.home, state, secrets: [:], transitions: 0)
        }
        if input == self.graph.backKey, let previous = state.history.last {
            state.history.removeLast()
            state.wrongInputs = 0
            return self.enter(previous, state, secrets: [:], transitions: 0)
        }
        switch screen.type {
        case .menu: return self.choose(screen, input, state)
        case .input: return self.accept(screen, input, state)
        case .list: return self.pick(screen, input, state)
        case .action, .route, .end: return self.failure(state)
        }
    }

    /// Shows `state`'s screen again (a resumed session), from its first page and without
    /// sealed secrets: a confirmation in progress starts over.
    public func redisplay(_ state: SessionState) -> Step {
        var state = state
        state.sealed = [:]
        state.wrongInputs = 0
        guard let screen = self.graph.screen(state.screen), [.menu, .input, .list].contains(screen.type) else { return self.failure(state) }
        if screen.type == .input, screen.confirms != nil, let first = screen.mismatch ?? self.inputScreen(storing: screen.confirms!) {
            if let index = state.history.lastIndex(of: first) { state.history.removeSubrange(index...) }
            return self.enter(first, state, secrets: [:], transitions: 0)
        }
        return self.enter(state.screen, state, secrets: [:], transitions: 0)
    }

    /// A page of the gateway's own (`settings.texts`), fitted to the budget.
    public func systemPage(_ name: String, language: String, variables: [String: String] = [:], continues: Bool = false) -> Page {
        let chosen = self.graph.languages.contains(language) ? language : self.graph.defaultLanguage
        return self.page(name, self.graph.systemText(name, chosen, variables), continues: continues)
    }

    /// Continues after the host ran the action ``Step/perform(_:_:)`` asked for.
    public func resume(_ state: SessionState, with result: ActionResult) -> Step {
        guard let screen = self.graph.screen(state.screen), screen.type == .action else { return self.failure(state) }
        var state = state
        switch result {
        case .success(let variables):
            state.variables.merge(variables) { $1 }
            self.adoptLanguage(&state)
            return self.enter(screen.next!, state, secrets: [:], transitions: 0)
        case .failure(let code, let variables):
            state.variables.merge(variables) { $1 }
            guard let target = screen.errors?[code] ?? screen.errors?["*"] else { return self.failure(state) }
            return self.enter(target, state, secrets: [:], transitions: 0)
        }
    }

    // MARK: - Screens

    private func enter(_ id: String, _ state: SessionState, secrets: [String: String], transitions: Int, notice: String? = nil) -> Step {
        if id == self.graph.home, let pending = state.variables[Self.pendingShortcut] {
            return self.takeShortcut(pending, state, transitions: transitions)
        }
        guard transitions < Self.maximumTransitions, let screen = self.graph.screen(id), let texts = self.graph.compiled[id] else {
            return self.failure(state)
        }
        var state = state
        state.screen = id
        switch screen.type {
        case .menu:
            state.page = 0
            return .show(self.menuPage(id, screen, state, notice: notice), state)
        case .list:
            state.page = 0
            if Self.items(state.variables[screen.items!]).isEmpty {
                guard let empty = screen.empty else { return self.failure(state) }
                return self.enter(empty, state, secrets: secrets, transitions: transitions + 1)
            }
            return .show(self.listPage(id, screen, state, notice: notice), state)
        case .input:
            let prompt = texts.render(texts.text, state.language, state.variables)
            return .show(self.page(id, [notice, prompt].compactMap { $0 }.joined(separator: "\n"), continues: true), state)
        case .end:
            return .show(self.page(id, texts.render(texts.text, state.language, state.variables), continues: false), state)
        case .route:
            let next = screen.routes!.first { $0.when.holds(for: state.variables) }?.next ?? screen.otherwise!
            return self.enter(next, state, secrets: secrets, transitions: transitions + 1)
        case .action:
            var values = state.variables
            values.merge(secrets) { $1 }
            var arguments: [String: String] = [:]
            var secretArguments: Set<String> = []
            for (name, text) in texts.arguments {
                arguments[name] = text.render(state.language, values)
                if !secrets.isEmpty, text.fallback.variables.contains(where: { secrets[$0] != nil }) {
                    secretArguments.insert(name)
                }
            }
            // An `http` action is named by its screen: the runner finds the call there.
            let action = screen.action == "http" ? Self.httpActionPrefix + id : screen.action!
            return .perform(ActionRequest(action: action, arguments: arguments, secretArguments: secretArguments), state)
        }
    }

    private func choose(_ screen: MenuDocument.Screen, _ input: String, _ state: SessionState) -> Step {
        var state = state
        let visible = self.visibleOptions(screen, state)
        if input == self.graph.moreKey, state.page + 1 < self.menuPages(state.screen, screen, state, notice: nil).count {
            state.page += 1
            state.wrongInputs = 0
            return .show(self.menuPage(state.screen, screen, state, notice: nil), state)
        }
        guard let number = Int(input), number >= 1, number <= visible.count else {
            return self.wrong(state) { state in
                // From the first page, where the notice goes: on a later one it would not show, and
                // the longer head would shift which options that page holds.
                var state = state
                state.page = 0
                return .show(self.menuPage(state.screen, screen, state, notice: self.graph.systemText("invalidChoice", state.language)), state)
            }
        }
        let option = visible[number - 1]
        for (name, value) in option.option.set ?? [:] { state.variables[name] = value }
        self.adoptLanguage(&state)
        state.wrongInputs = 0
        state.history.append(state.screen)
        return self.enter(option.option.next, state, secrets: [:], transitions: 0)
    }

    private func accept(_ screen: MenuDocument.Screen, _ input: String, _ state: SessionState) -> Step {
        var state = state
        let id = state.screen
        guard let value = screen.validator!.validate(input, plan: self.plan, currency: self.graph.currency) else {
            return self.wrong(state) { state in
                let error = self.graph.compiled[id]?.error?.render(state.language, state.variables) ?? ""
                return self.enter(id, state, secrets: [:], transitions: 0, notice: error.isEmpty ? nil : error)
            }
        }
        state.wrongInputs = 0
        let variable = screen.variable!
        var secrets: [String: String] = [:]
        if screen.secret == true {
            if let confirmed = screen.confirms {
                let matches = state.sealed[confirmed].map { $0 == self.seal(value, variable: confirmed, in: &state) } ?? false
                state.sealed[confirmed] = nil
                guard matches else {
                    let target = screen.mismatch ?? self.inputScreen(storing: confirmed) ?? id
                    let error = self.graph.compiled[id]?.error?.render(state.language, state.variables) ?? ""
                    if let index = state.history.lastIndex(of: target) { state.history.removeSubrange(index...) }
                    return self.enter(target, state, secrets: [:], transitions: 0, notice: error.isEmpty ? nil : error)
                }
            }
            if self.graph.screen(screen.next!)?.type == .action {
                secrets[variable] = value
            } else if let seal = self.seal(value, variable: variable, in: &state) {
                state.sealed[variable] = seal
            } else {
                return self.failure(state)
            }
        } else {
            state.variables[variable] = value
            self.adoptLanguage(&state)
        }
        state.history.append(id)
        return self.enter(screen.next!, state, secrets: secrets, transitions: 0)
    }

    /// A secret's seal, bound to this session (its random nonce) and to the variable, so that equal
    /// PINs typed in two sessions, or for two variables, never give equal seals. Nil without a sealer.
    private func seal(_ secret: String, variable: String, in state: inout SessionState) -> String? {
        guard let sealer = self.sealer else { return nil }
        if state.nonce.isEmpty {
            state.nonce = String((0..<16).map { _ in "0123456789abcdef".randomElement()! })
        }
        return sealer.seal("secret|\(state.nonce)|\(variable)|\(secret)")
    }

    private func wrong(_ state: SessionState, _ again: (SessionState) -> Step) -> Step {
        var state = state
        state.wrongInputs += 1
        if state.wrongInputs >= self.graph.maxWrongInputs {
            return .show(self.page(state.screen, self.graph.systemText("tooManyAttempts", state.language), continues: false), state)
        }
        return again(state)
    }

    private func failure(_ state: SessionState) -> Step {
        .show(self.page(state.screen, self.graph.systemText("failure", state.language), continues: false), state)
    }

    /// A `language` variable naming a configured language switches the session's language.
    private func adoptLanguage(_ state: inout SessionState) {
        if let language = state.variables["language"], language != state.language, self.graph.languages.contains(language) {
            state.language = language
        }
    }

    private func inputScreen(storing variable: String) -> String? {
        self.graph.document.screens.first { $0.value.type == .input && $0.value.variable == variable }?.key
    }

    private func page(_ screen: String, _ text: String, continues: Bool) -> Page {
        Page(text: self.graph.budget.truncate(text), continues: continues, screen: screen)
    }

    /// An `http` action's name as the runner gets it: `http:<screen id>`.
    public static let httpActionPrefix = "http:"

    // MARK: - Lists

    /// A list variable's items: a JSON array of objects of text fields, as an `http` action keeps
    /// it (``ListItems``); none when the variable is unset or not such a list.
    static func items(_ value: String?) -> [[String: String]] {
        value.map(ListItems.decode) ?? []
    }

    /// The user's pick on a list screen: the more key pages, a number chooses an item, whose
    /// fields are kept as `<variable>.<field>`.
    private func pick(_ screen: MenuDocument.Screen, _ input: String, _ state: SessionState) -> Step {
        var state = state
        let items = Self.items(state.variables[screen.items!])
        if input == self.graph.moreKey, state.page + 1 < self.listPages(state.screen, screen, state, notice: nil).count {
            state.page += 1
            state.wrongInputs = 0
            return .show(self.listPage(state.screen, screen, state, notice: nil), state)
        }
        guard let number = Int(input), number >= 1, number <= items.count else {
            return self.wrong(state) { state in
                // From the first page, where the notice goes (with it the pages split otherwise).
                var state = state
                state.page = 0
                return .show(self.listPage(state.screen, screen, state, notice: self.graph.systemText("invalidChoice", state.language)), state)
            }
        }
        let prefix = screen.variable!
        for key in state.variables.keys where key.hasPrefix(prefix + ".") { state.variables[key] = nil }
        for (field, value) in items[number - 1] { state.variables[prefix + "." + field] = value }
        state.wrongInputs = 0
        state.history.append(state.screen)
        return self.enter(screen.next!, state, secrets: [:], transitions: 0)
    }

    private func listPage(_ id: String, _ screen: MenuDocument.Screen, _ state: SessionState, notice: String?) -> Page {
        let pages = self.listPages(id, screen, state, notice: notice)
        return Page(text: pages[min(state.page, pages.count - 1)], continues: true, screen: id)
    }

    /// A list's items as numbered lines over pages that each fit the budget, as a menu's options.
    func listPages(_ id: String, _ screen: MenuDocument.Screen, _ state: SessionState, notice: String?) -> [String] {
        let texts = self.graph.compiled[id]
        let title = texts?.text?.render(state.language, state.variables) ?? ""
        let lines = Self.items(state.variables[screen.items!]).enumerated().map { number, item in
            // An item's own fields win over the session's variables of the same name.
            "\(number + 1). " + (texts?.item?.render(state.language, state.variables.merging(item) { $1 }) ?? "")
        }
        return self.pages(head: [notice, title.isEmpty ? nil : title].compactMap { $0 }.joined(separator: "\n"), lines: lines, state)
    }

    // MARK: - Menus and paging

    struct VisibleOption {
        let option: MenuDocument.Option
        let index: Int
    }

    private func visibleOptions(_ screen: MenuDocument.Screen, _ state: SessionState) -> [VisibleOption] {
        guard let options = screen.options else { return [] }
        var visible: [VisibleOption] = []
        visible.reserveCapacity(options.count)
        for (index, option) in options.enumerated() where option.when.map({ $0.holds(for: state.variables) }) ?? true {
            visible.append(VisibleOption(option: option, index: index))
        }
        return visible
    }

    private func menuPage(_ id: String, _ screen: MenuDocument.Screen, _ state: SessionState, notice: String?) -> Page {
        let pages = self.menuPages(id, screen, state, notice: notice)
        return Page(text: pages[min(state.page, pages.count - 1)], continues: true, screen: id)
    }

    /// Splits a menu into pages that each fit the budget: the title (and any notice) on the
    /// first, options numbered across pages, the more key on all but the last, back when there
    /// is somewhere to go back to.
    func menuPages(_ id: String, _ screen: MenuDocument.Screen, _ state: SessionState, notice: String?) -> [String] {
        let language = state.language
        let texts = self.graph.compiled[id]
        let title = texts?.text?.render(language, state.variables) ?? ""
        let head = notice.map { title.isEmpty ? $0 : $0 + "\n" + title } ?? title
        if let fixed = self.graph.layouts.lines[id]?[language] {
            return self.pager(state).pages(head: head, lines: fixed.lines, costs: fixed.costs)
        }
        let lines = self.visibleOptions(screen, state).enumerated().map { number, visible in
            "\(number + 1). " + (texts?.options[visible.index].render(language, state.variables) ?? "")
        }
        return self.pager(state).pages(head: head, lines: lines)
    }

    private func pages(head: String, lines: [String], _ state: SessionState) -> [String] {
        self.pager(state).pages(head: head, lines: lines)
    }

    /// The pager for the state's language, its more and back lines measured when the file loaded.
    private func pager(_ state: SessionState) -> MenuPager {
        if let paging = self.graph.layouts.paging[state.language] {
            return MenuPager(
                budget: self.graph.budget, more: (paging.more, paging.moreCost), back: state.history.isEmpty ? nil : (paging.back, paging.backCost)
            )
        }
        return MenuPager(
            budget: self.graph.budget, more: "\(self.graph.moreKey). " + self.graph.systemText("more", state.language),
            back: state.history.isEmpty ? nil : "\(self.graph.backKey). " + self.graph.systemText("back", state.language)
        )
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { self.indices.contains(index) ? self[index] : nil }
}
