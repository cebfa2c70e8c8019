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
        self.init(budget: budget, more: (more, TextBudget.Cost(more)), back: back.map { ($0, TextBudget.Cost($0)) })
    }

    /// With the more and back lines measured already.
    init(budget: TextBudget, more: (String, TextBudget.Cost), back: (String, TextBudget.Cost)?) {
        self.budget = budget
        (self.more, self.moreCost) = more
        (self.back, self.backCost) = (back?.0, back?.1)
    }

    /// `costs`: each line's, when measured already (a menu with fixed lines, ``MenuLayouts``).
    func pages(head: String, lines: [String], costs: [TextBudget.Cost]? = nil) -> [String] {
        var pages: [String] = []
        var current: [String] = []
        current.reserveCapacity(lines.count + 1)
        var running = Running()
        if !head.isEmpty {
            current.append(head)
            running.add(head, TextBudget.Cost(head))
        }
        var onPage = 0
        for (index, line) in lines.enumerated() {
            let cost = costs?[index] ?? TextBudget.Cost(line)
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
        // A last page measured to fit (the usual case) is not measured again to be cut.
        let last = self.compose(current, last: true)
        pages.append(self.fits(running, last: true) ? last : self.budget.truncate(last))
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

    /// The page's texts, then the more line (unless `last`) and the back line, joined by newlines
    /// into one string grown once.
    func compose(_ body: [String], last: Bool) -> String {
        var page = ""
        page.reserveCapacity(body.reduce(0) { $0 + $1.utf8.count + 1 } + self.more.utf8.count + (self.back?.utf8.count ?? 0) + 2)
        var first = true
        func add(_ text: String) {
            if !first { page += "\n" }
            page += text
            first = false
        }
        for text in body { add(text) }
        if !last { add(self.more) }
        if let back = self.back { add(back) }
        return page
    }
}
