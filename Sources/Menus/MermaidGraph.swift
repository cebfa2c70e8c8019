extension MenuGraph {
    /// The journeys as a Mermaid state diagram, for `ussd-gateway menus graph`.
    public func mermaid(language: String? = nil) -> String {
        let language = language ?? self.defaultLanguage
        func node(_ id: String) -> String {
            String(id.map { $0.isLetter || $0.isNumber ? $0 : "_" })
        }
        func label(_ text: String) -> String {
            let flat = text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\"", with: "'")
                .replacingOccurrences(of: ":", with: " ")
            return flat.count > 40 ? String(flat.prefix(37)) + "..." : flat
        }
        var lines = ["stateDiagram-v2", "    [*] --> \(node(self.document.start))"]
        for id in self.document.screens.keys.sorted() {
            let screen = self.document.screens[id]!
            let kind = screen.type == .action ? "action \(screen.action ?? "")" : screen.type.rawValue
            lines.append("    \(node(id)) : \(label(id)) (\(label(kind)))")
            for (index, option) in (screen.options ?? []).enumerated() {
                lines.append("    \(node(id)) --> \(node(option.next)) : \(index + 1) \(label(option.label.text(language, fallback: self.defaultLanguage)))")
            }
            if let next = screen.next { lines.append("    \(node(id)) --> \(node(next))" + (screen.type == .action ? " : ok" : "")) }
            for (code, target) in (screen.errors ?? [:]).sorted(by: { $0.key < $1.key }) {
                lines.append("    \(node(id)) --> \(node(target)) : \(label(code))")
            }
            for route in screen.routes ?? [] {
                lines.append("    \(node(id)) --> \(node(route.next)) : if \(label(route.when.variable))")
            }
            if let otherwise = screen.otherwise { lines.append("    \(node(id)) --> \(node(otherwise)) : otherwise") }
            if let mismatch = screen.mismatch { lines.append("    \(node(id)) --> \(node(mismatch)) : mismatch") }
            if screen.type == .end { lines.append("    \(node(id)) --> [*]") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
