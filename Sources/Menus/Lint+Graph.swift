// menus.json's lint: the graph (targets, reachability, dead ends, options) and the actions screens name.

extension Linter {
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
}
