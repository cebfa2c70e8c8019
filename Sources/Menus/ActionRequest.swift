/// An action the host runs: name and rendered arguments (which may hold a secret from this hop).
public struct ActionRequest: Sendable, Hashable {
    public let action: String
    public let arguments: [String: String]
    /// Argument names whose values are secrets (never log them).
    public let secretArguments: Set<String>
}
