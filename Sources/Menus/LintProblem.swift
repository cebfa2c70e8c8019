

/// One problem `menus lint` found: where (a screen id, `sms.<command>`, or a top-level key) and what.
public struct LintProblem: Sendable, Hashable, CustomStringConvertible {
    public let location: String
    public let message: String
    public var description: String { "\(self.location): \(self.message)" }
}
