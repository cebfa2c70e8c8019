import Basics

/// Why a body is not a usable MoMo result (a callback is answered 400; a status answer becomes
/// ``MoMoError/malformedResponse(status:)``). The reason names the field, never its value.
public struct MoMoCallbackMalformed: LogSafeError, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
