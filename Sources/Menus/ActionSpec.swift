/// What an action promises: the arguments it reads, the variables it sets and the error codes it
/// can fail with. The gateway passes its registry to ``MenuGraph`` so lint can check the file.
public struct ActionSpec: Sendable, Hashable {
    public var name: String
    public var arguments: Set<String>
    /// Variables set on success, with their longest rendered length.
    public var results: [String: MenuDocument.VariableSpec]
    public var errors: Set<String>
    /// Variables an error sets for its screen (``ActionResult/failure(_:_:)``'s values), per error
    /// code, with their longest rendered length: `cooling_off` sets `until`.
    public var errorResults: [String: [String: MenuDocument.VariableSpec]]

    public init(
        name: String, arguments: Set<String>, results: [String: MenuDocument.VariableSpec] = [:], errors: Set<String> = [],
        errorResults: [String: [String: MenuDocument.VariableSpec]] = [:]
    ) {
        self.name = name
        self.arguments = arguments
        self.results = results
        self.errors = errors
        self.errorResults = errorResults
    }
}
