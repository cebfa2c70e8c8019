import Foundation
import Basics

/// A checked, compiled `menus.json`: every template parsed, every screen of a known shape.
///
/// Loading fails only on what makes the file unusable to read (bad JSON, unknown fields' types, a
/// screen missing what its type needs, a malformed template); everything a journey can get wrong
/// is ``lint(actions:)``'s business, which the gateway runs before serving.
public struct MenuGraph: Sendable {
    public let document: MenuDocument
    /// The deployment's currency and rail: how `{…|amount}` shows amounts and amount inputs read
    /// them, and what `{currency}` and `{mobileMoney}` say.
    public let market: Market
    public var currency: Currency { self.market.currency }
    public let budget: TextBudget
    public let backKey: String
    public let homeKey: String
    public let moreKey: String
    public let maxWrongInputs: Int
    public var home: String { self.document.home ?? self.document.start }
    public var languages: [String] { self.document.languages }
    public var defaultLanguage: String { self.document.defaultLanguage }

    /// Compiled texts by where they sit: `screen-id` + `.text`, `.error`, `.option.N`.
    let texts: [String: CompiledText]
    /// The same texts gathered per screen, so a step looks a screen up once.
    let compiled: [String: CompiledScreen]
    /// `more`, `back`, `invalidChoice`, ... from settings.
    let systemTexts: [String: CompiledText]
    /// What paging needs that is the same on every hop (``MenuLayouts``).
    private(set) var layouts = MenuLayouts()
    /// The `http` actions' templates, by screen.
    let calls: [String: HTTPTemplates]

    /// The templates of the `http` action on screen `id`.
    public func httpTemplates(_ id: String) -> HTTPTemplates? { self.calls[id] }

    /// Reads and compiles a menus file.
    public static func load(contentsOf url: URL, market: Market = .kenya) throws(MenuLoadError) -> MenuGraph {
        guard let data = try? Data(contentsOf: url) else {
            throw MenuLoadError(location: url.path, problem: "cannot be read")
        }
        return try self.load(data: data, market: market)
    }

    /// Decodes and compiles menus JSON.
    public static func load(data: Data, market: Market = .kenya) throws(MenuLoadError) -> MenuGraph {
        let document: MenuDocument
        do {
            document = try JSONDecoder().decode(MenuDocument.self, from: data)
        } catch let error as DecodingError {
            if let syntax = MenuLoadError(syntaxOf: data) { throw syntax }
            throw MenuLoadError(decoding: error)
        } catch {
            throw MenuLoadError(location: "menus.json", problem: "\(error)")
        }
        return try MenuGraph(document: document, market: market)
    }

    public init(document: MenuDocument, market: Market = .kenya) throws(MenuLoadError) {
        self.document = document
        self.market = market
        let settings = document.settings
        let gsm7 = settings.pageBudget ?? 160
        guard (20...TextBudget.ceiling).contains(gsm7) else {
            throw MenuLoadError(location: "settings.pageBudget", problem: "must be from 20 to \(TextBudget.ceiling), got \(gsm7)")
        }
        self.budget = TextBudget(gsm7: gsm7, ucs2: settings.ucs2PageBudget ?? 70)
        self.backKey = settings.backKey ?? "0"
        self.homeKey = settings.homeKey ?? "00"
        self.moreKey = settings.moreKey ?? "98"
        self.maxWrongInputs = settings.maxWrongInputs ?? 3
        guard !document.languages.isEmpty, document.languages.contains(document.defaultLanguage) else {
            throw MenuLoadError(location: "defaultLanguage", problem: "must be one of languages \(document.languages)")
        }
        guard Set([self.backKey, self.homeKey, self.moreKey]).count == 3 else {
            throw MenuLoadError(location: "settings", problem: "back, home and more keys must differ")
        }

        let texts = try Self.compileTexts(document, market: market)
        self.texts = texts
        (self.compiled, self.calls) = Self.compileScreens(document, texts: texts, market: market)
        self.systemTexts = Dictionary(uniqueKeysWithValues: (settings.texts ?? [:]).keys.map { ($0, texts["settings.texts.\($0)"]!) })
        self.layouts = MenuLayouts(self)
    }

    /// Every text of the document compiled once, keyed by where it sits (`<screen>.text`,
    /// `<screen>.option.<n>`, `sms.<command>.reply`, ...).
    private static func compileTexts(_ document: MenuDocument, market: Market) throws(MenuLoadError) -> [String: CompiledText] {
        var texts: [String: CompiledText] = [:]
        func compile(_ text: LocalizedText?, _ key: String) throws(MenuLoadError) {
            guard let text else { return }
            texts[key] = try CompiledText(text, location: key, defaultLanguage: document.defaultLanguage, market: market)
        }
        for (id, screen) in document.screens {
            try Self.checkShape(id, screen)
            try compile(screen.text, id + ".text")
            try compile(screen.error, id + ".error")
            for (index, option) in (screen.options ?? []).enumerated() {
                try compile(option.label, "\(id).option.\(index)")
            }
            for (name, argument) in screen.arguments ?? [:] {
                try compile(.shared(argument), "\(id).argument.\(name)")
            }
            try compile(screen.item, id + ".item")
            if let call = screen.http {
                try compile(.shared(call.path), id + ".http.path")
                for (name, value) in call.query ?? [:] { try compile(.shared(value), "\(id).http.query.\(name)") }
                for (name, value) in call.body ?? [:] { try compile(.shared(value), "\(id).http.body.\(name)") }
                for (name, value) in call.notice?.params ?? [:] { try compile(.shared(value), "\(id).http.notice.\(name)") }
            }
        }
        for (name, text) in document.settings.texts ?? [:] {
            try compile(text, "settings.texts.\(name)")
        }
        if let sms = document.sms {
            try compile(sms.help, "sms.help")
            for (code, text) in sms.errors ?? [:] { try compile(text, "sms.errors.\(code)") }
            for (name, notice) in sms.notifications ?? [:] { try compile(notice.text, "sms.notifications.\(name)") }
            for command in sms.commands {
                try compile(command.reply, "sms.\(command.name).reply")
                try compile(command.usage, "sms.\(command.name).usage")
                for (code, text) in command.errors ?? [:] { try compile(text, "sms.\(command.name).errors.\(code)") }
                for (name, argument) in command.actionArguments ?? [:] {
                    try compile(.shared(argument), "sms.\(command.name).argument.\(name)")
                }
            }
        }
        return texts
    }

    /// Each screen with its compiled texts, and the `http` calls' templates by screen.
    private static func compileScreens(
        _ document: MenuDocument, texts: [String: CompiledText], market: Market
    ) -> (screens: [String: CompiledScreen], calls: [String: HTTPTemplates]) {
        var compiled: [String: CompiledScreen] = [:]
        var calls: [String: HTTPTemplates] = [:]
        for (id, screen) in document.screens {
            var arguments = (screen.arguments ?? [:]).keys.sorted().map { ($0, texts["\(id).argument.\($0)"]!) }
            if let call = screen.http {
                let templates = HTTPTemplates(
                    path: texts[id + ".http.path"]!.fallback,
                    query: (call.query ?? [:]).keys.sorted().map { ($0, texts["\(id).http.query.\($0)"]!.fallback) },
                    body: (call.body ?? [:]).keys.sorted().map { ($0, texts["\(id).http.body.\($0)"]!.fallback) },
                    notice: (call.notice?.params ?? [:]).keys.sorted().map { ($0, texts["\(id).http.notice.\($0)"]!.fallback) }
                )
                calls[id] = templates
                // The engine hands the action the values of the variables the call reads; the
                // runner renders the templates itself, escaping each value for where it goes.
                arguments = templates.variables.sorted().map { name in
                    (name, try! CompiledText(.shared("{\(name)}"), location: id, defaultLanguage: document.defaultLanguage, market: market))
                }
            }
            compiled[id] = CompiledScreen(
                text: texts[id + ".text"],
                error: texts[id + ".error"],
                options: (screen.options ?? []).indices.map { texts["\(id).option.\($0)"]! },
                arguments: arguments,
                item: texts[id + ".item"]
            )
        }
        return (compiled, calls)
    }

    /// The screen's fields its type needs; anything else is lint's concern.
    private static func checkShape(_ id: String, _ screen: MenuDocument.Screen) throws(MenuLoadError) {
        func require(_ present: Bool, _ field: String) throws(MenuLoadError) {
            if !present { throw MenuLoadError(location: "screens.\(id)", problem: "a \(screen.type.rawValue) screen needs \(field)") }
        }
        switch screen.type {
        case .menu:
            try require(screen.text != nil, "text")
            try require(screen.options != nil, "options")
        case .input:
            try require(screen.text != nil, "text")
            try require(screen.variable != nil, "variable")
            try require(screen.validator != nil, "validator")
            try require(screen.next != nil, "next")
        case .action:
            try require(screen.action != nil, "action")
            try require(screen.next != nil, "next")
            if screen.action == "http" { try require(screen.http != nil, "http (the call)") }
        case .list:
            try require(screen.text != nil, "text")
            try require(screen.items != nil, "items (the list variable)")
            try require(screen.item != nil, "item (each line's text)")
            try require(screen.variable != nil, "variable (where the chosen item is kept)")
            try require(screen.next != nil, "next")
        case .route:
            try require(screen.routes != nil, "routes")
            try require(screen.otherwise != nil, "otherwise")
        case .end:
            try require(screen.text != nil, "text")
        }
    }

    public func screen(_ id: String) -> MenuDocument.Screen? { self.document.screens[id] }

    /// An SMS notice in `language`: `template.reason` when `params` has a reason and the file
    /// words it, else `template`; nil when the file has neither.
    public func notification(_ template: String, language: String, params: [String: String]) -> String? {
        var keys = ["sms.notifications.\(template)"]
        if let reason = params["reason"] { keys.insert("sms.notifications.\(template).\(reason)", at: 0) }
        guard let key = keys.first(where: { self.texts[$0] != nil }) else { return nil }
        return self.render(key, language, params)
    }

    /// A compiled text rendered in `language` with `variables`.
    func render(_ key: String, _ language: String, _ variables: [String: String]) -> String {
        self.texts[key]?.render(language, variables) ?? ""
    }

    /// An engine text from settings, or the built-in English one.
    /// A text of `settings.texts` (the gateway's own words: paging, errors, resume, ...), or its
    /// built-in English default.
    public func systemText(_ name: String, _ language: String, _ variables: [String: String] = [:]) -> String {
        if let text = self.systemTexts[name] { return text.render(language, variables) }
        switch name {
        case "more": return "More"
        case "back": return "Back"
        case "invalidChoice": return "Invalid choice."
        case "tooManyAttempts": return "Too many wrong entries. Please dial again."
        case "resumeOffer": return "You left a session unfinished.\n1. Continue where you left off\n2. Start again"
        case "processing": return "We are processing your request. You will get an SMS."
        case "rateLimited": return "Too many requests. Please wait a minute and dial again."
        case "smsRateLimited": return "Too many messages. Please wait a minute, then send your request again."
        case "unknownService": return "This service is not available."
        default: return "Sorry, something went wrong. Please try again."
        }
    }
}

/// A screen's texts, compiled.
struct CompiledScreen: Sendable {
    let text: CompiledText?
    let error: CompiledText?
    let options: [CompiledText]
    let arguments: [(name: String, text: CompiledText)]
    /// A list screen's line per item.
    var item: CompiledText? = nil

    func render(_ text: CompiledText?, _ language: String, _ variables: [String: String]) -> String {
        text?.render(language, variables) ?? ""
    }
}

/// A localized text with its templates parsed once.
struct CompiledText: Sendable {
    let templates: [String: Template]
    let fallback: Template

    init(_ text: LocalizedText, location: String, defaultLanguage: String, market: Market) throws(MenuLoadError) {
        var templates: [String: Template] = [:]
        do {
            switch text {
            case .shared(let source):
                let template = try Template(source, market: market)
                self.templates = [:]
                self.fallback = template
                return
            case .perLanguage(let sources):
                for (language, source) in sources { templates[language] = try Template(source, market: market) }
            }
        } catch {
            throw MenuLoadError(location: location, problem: "bad template: \(error.problem)")
        }
        self.templates = templates
        self.fallback = templates[defaultLanguage] ?? templates.sorted { $0.key < $1.key }.first?.value ?? (try! Template("", market: market))
    }

    func template(_ language: String) -> Template { self.templates[language] ?? self.fallback }

    func render(_ language: String, _ variables: [String: String]) -> String {
        self.template(language).render(variables)
    }

    var all: [(language: String?, template: Template)] {
        self.templates.isEmpty ? [(nil, self.fallback)] : self.templates.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// An `http` action's templates, parsed once: the path, the query values, the body's values and
/// the notice's parameters. Each is rendered by the runner, which escapes values for their place.
public struct HTTPTemplates: Sendable {
    public let path: Template
    public let query: [(name: String, template: Template)]
    public let body: [(name: String, template: Template)]
    public let notice: [(name: String, template: Template)]

    /// Every variable the call reads.
    public var variables: Set<String> {
        var names = Set(self.path.variables)
        for (_, template) in self.query + self.body + self.notice { names.formUnion(template.variables) }
        return names
    }
}
