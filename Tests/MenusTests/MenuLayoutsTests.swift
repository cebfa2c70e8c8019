import Foundation
@testable import Menus
import Testing

/// Menus whose options have no condition and no variable have their lines and costs worked out
/// once when the file loads (``MenuLayouts``); their pages are the same as pages laid out from
/// scratch on the hop, in every language, with and without a back line and a notice.
@Suite struct MenuLayoutsTests {
    /// The pages as laid out before the layouts were kept: every line rendered and measured.
    func fromScratch(_ graph: MenuGraph, _ id: String, _ state: SessionState, notice: String?) -> [String] {
        let texts = graph.compiled[id]
        let title = texts?.text?.render(state.language, state.variables) ?? ""
        let lines = (texts?.options ?? []).enumerated().map { "\($0.offset + 1). " + $0.element.render(state.language, state.variables) }
        let pager = MenuPager(
            budget: graph.budget, more: "\(graph.moreKey). " + graph.systemText("more", state.language),
            back: state.history.isEmpty ? nil : "\(graph.backKey). " + graph.systemText("back", state.language)
        )
        return Self.lastCut(pager.pages(head: [notice, title.isEmpty ? nil : title].compactMap { $0 }.joined(separator: "\n"), lines: lines), graph.budget)
    }

    /// The pages with the last one cut to the budget, as the pager did before it measured the last
    /// page's fit from its running cost: a page that fits is its own cut, so any page the pager
    /// left uncut but should have cut differs here.
    static func lastCut(_ pages: [String], _ budget: TextBudget) -> [String] {
        pages.dropLast() + [budget.truncate(pages.last ?? "")]
    }

    @Test func everyFixedMenuPagesAsFromScratch() throws {
        let graph = try MenuGraph.load(contentsOf: defaultMenusURL())
        let engine = Engine(graph: graph)
        let fixed = graph.layouts.lines.keys.sorted()
        #expect(fixed.contains("sav.menu") && fixed.contains("main"), "menus of fixed lines are laid out once, whatever their titles")
        for id in fixed {
            let screen = try #require(graph.screen(id))
            for language in graph.languages {
                for history in [[], ["main"]] {
                    for notice in [nil, graph.systemText("invalidChoice", language)] {
                        var state = SessionState(screen: id, variables: ["name": "Wanjiku"], language: language)
                        state.history = history
                        #expect(engine.menuPages(id, screen, state, notice: notice) == self.fromScratch(graph, id, state, notice: notice), "\(id) \(language)")
                    }
                }
            }
        }
    }

    /// An option with a condition or a variable makes its menu's lines the hop's to lay out.
    @Test func aMenuWithAConditionOrAVariableIsLaidOutOnTheHop() throws {
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: defaultMenusURL())) as? [String: Any])
        var screens = try #require(json["screens"] as? [String: Any])
        var savings = try #require(screens["sav.menu"] as? [String: Any])
        var options = try #require(savings["options"] as? [[String: Any]])
        options[0]["label"] = ["en": "Savings of {name}", "sw": "Akiba ya {name}"]
        savings["options"] = options
        screens["sav.menu"] = savings
        var account = try #require(screens["main"] as? [String: Any])
        var accountOptions = try #require(account["options"] as? [[String: Any]])
        accountOptions[1]["when"] = ["variable": "name", "equals": "Wanjiku"]
        account["options"] = accountOptions
        screens["main"] = account
        json["screens"] = screens
        let graph = try MenuGraph.load(data: try JSONSerialization.data(withJSONObject: json))
        #expect(graph.layouts.lines["sav.menu"] == nil && graph.layouts.lines["main"] == nil && graph.layouts.lines["send.confirm"] != nil)
        let engine = Engine(graph: graph)
        var state = SessionState(screen: "sav.menu", variables: ["name": "Akinyi"], language: "en")
        state.history = ["main"]
        #expect(engine.menuPages("sav.menu", try #require(graph.screen("sav.menu")), state, notice: nil).first?.contains("1. Savings of Akinyi") == true)
        state.screen = "main"
        let shown = engine.menuPages("main", try #require(graph.screen("main")), state, notice: nil).joined()
        #expect(!shown.contains("Deposit (M-Pesa)"), "the option whose condition does not hold is not shown")
    }

    /// A menu over several pages, and one whose single line cannot fit and is cut, laid out with
    /// lines measured once and lines measured on the hop.
    @Test func measuredLinesPageAndCutAsUnmeasuredOnes() {
        let budget = TextBudget(gsm7: 60, ucs2: 30)
        let (more, back) = ("98. More", "0. Back")
        let measured = MenuPager(budget: budget, more: (more, TextBudget.Cost(more)), back: (back, TextBudget.Cost(back)))
        let unmeasured = MenuPager(budget: budget, more: more, back: back)
        // A last page exactly at the budget (60 septets with the back line) and one septet over it.
        let exact = String(repeating: "e", count: 60 - 1 - back.count)
        let cases: [(String, [String])] = [
            ("", [exact]),
            ("", [exact + "e"]),
            ("", [exact.dropLast() + "€"]),
            ("Choose one", (1...9).map { "\($0). Option number \($0)" }),
            ("Chagua", ["1. Ndiyo", "2. Hapana", "3. Ğ-ẽ ünïcödé line that is long"]),
            ("", [String(repeating: "x", count: 90)]),
            (String(repeating: "h", count: 70), []),
        ]
        for (head, lines) in cases {
            let expected = Self.lastCut(unmeasured.pages(head: head, lines: lines), budget)
            #expect(unmeasured.pages(head: head, lines: lines) == expected, "\(head)")
            #expect(measured.pages(head: head, lines: lines, costs: lines.map(TextBudget.Cost.init)) == expected, "\(head)")
            #expect(expected.allSatisfy { budget.fits($0) }, "every page fits: \(expected)")
        }
    }
}
