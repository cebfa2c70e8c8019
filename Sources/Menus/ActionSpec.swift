/// What an action promises: the arguments it reads, the variables it sets and the error codes it
/// can fail with. The gateway passes its registry to ``MenuGraph`` so lint can check the file.
public struct ActionSpec: Sendable, Hashable {
    public var name: String
    public var arguments: Set<String>
    /// Variables set on success, with their longest rendered length.
    public var results: [String: MenuDocument.VariableSpec]
    public var errors: Set<String>

    public init(name: String, arguments: Set<String>, results: [String: MenuDocument.VariableSpec] = [:], errors: Set<String> = []) {
        self.name = name
        self.arguments = arguments
        self.results = results
        self.errors = errors
    }
}
