import Basics

/// The small path syntax of `http` actions' response mappings: `$`, then `.name` (letters, digits,
/// `_` or `-`), `[n]` (an index) or `[*]` (every element, at most once). `$.jobs[*].title` is each
/// job's title; `$.total` one value. Nothing else is evaluated.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    enum Step: Sendable, Hashable {
        case key(String)
        case index(Int)
        case all
    }

    let steps: [Step]
    public let description: String

    /// Nil when `text` is not a path of this syntax.
    public init?(_ text: String) {
        guard text.hasPrefix("$"), text.count <= 200 else { return nil }
        var steps: [Step] = []
        var rest = Substring(text.dropFirst())
        while !rest.isEmpty {
            if rest.hasPrefix(".") {
                let name = rest.dropFirst().prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
                guard !name.isEmpty else { return nil }
                steps.append(.key(String(name)))
                rest = rest.dropFirst(1 + name.count)
            } else if rest.hasPrefix("[*]") {
                steps.append(.all)
                rest = rest.dropFirst(3)
            } else if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
                let digits = rest[rest.index(after: rest.startIndex)..<close]
                guard (1...6).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(digits) else { return nil }
                steps.append(.index(index))
                rest = rest[rest.index(after: close)...]
            } else {
                return nil
            }
        }
        guard steps.filter({ $0 == .all }).count <= 1 else { return nil }
        self.steps = steps
        self.description = text
    }

    /// Whether the path selects every element of an array (`[*]`).
    public var isList: Bool { self.steps.contains(.all) }

    /// The one value at the path; nil when it is missing (or the path is a list path).
    public func value(in json: JSONValue) -> JSONValue? {
        guard !self.isList else { return nil }
        return Self.walk(json, self.steps[...])
    }

    /// The values a list path selects (one per array element that has the rest of the path); nil
    /// when the array itself is missing.
    public func values(in json: JSONValue) -> [JSONValue]? {
        guard let star = self.steps.firstIndex(of: .all), case .array(let items)? = Self.walk(json, self.steps[..<star]) else { return nil }
        return items.compactMap { Self.walk($0, self.steps[(star + 1)...]) }
    }

    /// A scalar as the text a session variable holds: strings as they are, numbers in digits,
    /// booleans as `true` / `false`; nil for null, objects and arrays.
    public static func text(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): return text
        case .integer(let number): return String(number)
        case .decimal(let number): return number.isFinite ? String(number) : nil
        case .bool(let flag): return flag ? "true" : "false"
        case .null, .array, .object: return nil
        }
    }

    private static func walk(_ json: JSONValue, _ steps: ArraySlice<Step>) -> JSONValue? {
        var current = json
        for step in steps {
            switch (step, current) {
            case (.key(let name), .object(let members)):
                guard let next = members[name] else { return nil }
                current = next
            case (.index(let index), .array(let items)):
                guard items.indices.contains(index) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}
