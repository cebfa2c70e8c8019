/// What paging a menu needs that is the same on every hop, worked out once when the file loads:
/// each language's more and back lines with their costs, and the numbered option lines (with
/// their costs) of each menu whose options have no condition and no variable. A hop that shows
/// such a menu renders only its title and lays the lines out.
struct MenuLayouts: Sendable {
    /// A language's more and back lines, and what each costs on a page.
    struct Paging: Sendable {
        let more: String
        let moreCost: TextBudget.Cost
        let back: String
        let backCost: TextBudget.Cost
    }

    /// A menu's option lines in one language (`1. ...`), and what each costs.
    struct Lines: Sendable {
        let lines: [String]
        let costs: [TextBudget.Cost]
    }

    private(set) var paging: [String: Paging] = [:]
    /// By screen, then language.
    private(set) var lines: [String: [String: Lines]] = [:]

    init() {}

    init(_ graph: MenuGraph) {
        for language in graph.languages {
            let more = "\(graph.moreKey). " + graph.systemText("more", language)
            let back = "\(graph.backKey). " + graph.systemText("back", language)
            self.paging[language] = Paging(more: more, moreCost: TextBudget.Cost(more), back: back, backCost: TextBudget.Cost(back))
        }
        for (id, screen) in graph.document.screens where screen.type == .menu {
            guard let options = screen.options, options.allSatisfy({ $0.when == nil }), let compiled = graph.compiled[id],
                compiled.options.count == options.count, compiled.options.allSatisfy({ $0.all.allSatisfy { $0.template.variables.isEmpty } })
            else { continue }
            var byLanguage: [String: Lines] = [:]
            for language in graph.languages {
                let lines = compiled.options.enumerated().map { "\($0.offset + 1). " + $0.element.render(language, [:]) }
                byLanguage[language] = Lines(lines: lines, costs: lines.map(TextBudget.Cost.init))
            }
            self.lines[id] = byLanguage
        }
    }
}
