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
        var current: [String] = []
        var running = Running()
        if !head.isEmpty {
            current.append(head)
            running.add(head, TextBudget.Cost(head))
        }
        var onPage = 0
        for (index, line) in lines.enumerated() {
            let cost = TextBudget.Cost(line)
            var candidate = running
            candidate.add(line, cost)
            if onPage > 0 && !self.fits(candidate, last: index == lines.count - 1) {
                // `current` fitted with the more line when its last option went in.
                pages.append(self.compose(current, last: false))
                (current, running, onPage) = ([line], Running(), 1)
                running.add(line, cost)
            } else {
                current.append(line)
                running = candidate
                onPage += 1
            }
        }
        pages.append(self.budget.truncate(self.compose(current, last: true)))
        return pages
    }

    /// The cost of texts joined by newlines, kept as they are added: no array of texts or costs is
    /// built to measure a page.
    struct Running {
        var septets = 0
        var utf16 = 0
        var gsm7 = true
        var parts = 0

        mutating func add(_ text: String, _ cost: TextBudget.Cost) {
            self.septets += cost.septets
            self.utf16 += text.utf16.count
            self.gsm7 = self.gsm7 && cost.gsm7
            self.parts += 1
        }
    }

    /// Whether the page's texts fit with the more line (unless `last`) and the back line.
    func fits(_ page: Running, last: Bool) -> Bool {
        var all = page
        if !last { all.add(self.more, self.moreCost) }
        if let back = self.back, let backCost = self.backCost { all.add(back, backCost) }
        let separators = max(all.parts - 1, 0)
        return all.gsm7 ? all.septets + separators <= self.budget.gsm7 : all.utf16 + separators <= self.budget.ucs2
    }

    func compose(_ body: [String], last: Bool) -> String {
        (body + (last ? [] : [self.more]) + (self.back.map { [$0] } ?? [])).joined(separator: "\n")
    }
}
