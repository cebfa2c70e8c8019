/// Lays a menu's lines out on pages that each fit the budget: the head on the first, the more
/// line on all but the last, the back line on every page when there is one. Each line is measured
/// once; a page's cost is its lines' costs added up.
struct MenuPager {
    let budget: TextBudget
    let more: String
    let back: String?
    let moreCost: TextBudget.Cost
    let backCost: TextBudget.Cost?

    init(budget: TextBudget, more: String, back: String?) {
        self.budget = budget
        self.more = more
        self.back = back
        self.moreCost = TextBudget.Cost(more)
        self.backCost = back.map(TextBudget.Cost.init)
    }

    func pages(head: String, lines: [String]) -> [String] {
        var pages: [String] = []
        var current: [String] = head.isEmpty ? [] : [head]
        var currentCosts: [TextBudget.Cost] = current.map(TextBudget.Cost.init)
        var onPage = 0
        for (index, line) in lines.enumerated() {
            let cost = TextBudget.Cost(line)
            if onPage > 0 && !self.fits(current + [line], currentCosts + [cost], last: index == lines.count - 1) {
                // `current` fitted with the more line when its last option went in.
                pages.append(self.compose(current, last: false))
                (current, currentCosts, onPage) = ([line], [cost], 1)
            } else {
                current.append(line)
                currentCosts.append(cost)
                onPage += 1
            }
        }
        pages.append(self.budget.truncate(self.compose(current, last: true)))
        return pages
    }

    func fits(_ texts: [String], _ costs: [TextBudget.Cost], last: Bool) -> Bool {
        var allTexts = texts
        var allCosts = costs
        if !last {
            allTexts.append(self.more)
            allCosts.append(self.moreCost)
        }
        if let back = self.back, let backCost = self.backCost {
            allTexts.append(back)
            allCosts.append(backCost)
        }
        return self.budget.measure(TextBudget.Cost.joined(allCosts, texts: allTexts)).fits
    }

    func compose(_ body: [String], last: Bool) -> String {
        (body + (last ? [] : [self.more]) + (self.back.map { [$0] } ?? [])).joined(separator: "\n")
    }
}
