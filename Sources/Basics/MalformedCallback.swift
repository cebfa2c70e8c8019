/// Why a callback cannot be used. The reason names the field, never its value: values can hold PINs.
public struct MalformedCallback: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
