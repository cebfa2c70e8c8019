/// A declarative test on one variable: no expressions, nothing that can reach the environment.
///
/// ```json
/// {"variable": "status", "equals": "locked"}
/// {"variable": "savings", "greaterThan": 0}
/// {"variable": "language", "in": ["en", "sw"]}
/// {"variable": "name", "exists": true}
/// ```
/// Comparisons are numeric when both sides are integers, else text.
public struct Condition: Sendable, Hashable, Codable {
    public var variable: String
    public var equals: String?
    public var notEquals: String?
    public var exists: Bool?
    public var `in`: [String]?
    public var lessThan: Int?
    public var greaterThan: Int?

    public init(variable: String, equals: String? = nil, notEquals: String? = nil, exists: Bool? = nil, in values: [String]? = nil,
                lessThan: Int? = nil, greaterThan: Int? = nil) {
        self.variable = variable
        self.equals = equals
        self.notEquals = notEquals
        self.exists = exists
        self.in = values
        self.lessThan = lessThan
        self.greaterThan = greaterThan
    }

    /// True when every test given holds for `variables`.
    public func holds(for variables: [String: String]) -> Bool {
        let value = variables[self.variable]
        if let exists, exists != (value != nil && value != "") { return false }
        if let equals, value != equals { return false }
        if let notEquals, value == notEquals { return false }
        if let values = self.in, !values.contains(value ?? "") { return false }
        if let lessThan {
            guard let number = value.flatMap({ Int($0) }), number < lessThan else { return false }
        }
        if let greaterThan {
            guard let number = value.flatMap({ Int($0) }), number > greaterThan else { return false }
        }
        return true
    }

    /// True when the condition tests nothing (a mistake in the file).
    var isEmpty: Bool {
        self.equals == nil && self.notEquals == nil && self.exists == nil && self.in == nil && self.lessThan == nil && self.greaterThan == nil
    }
}
