import Basics

/// Why a body is not a usable Daraja callback (answered 400). The reason names the field, never
/// its value.
public struct DarajaCallbackMalformed: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
