/// An error whose `description` never carries a value from a request or a secret: safe to log.
/// Each error type conforms where it is defined (its module knows what its words may hold).
public protocol LogSafeError: Error, CustomStringConvertible {}

/// What may be logged of an error: the description of a ``LogSafeError``, and only the type name of
/// anything else, whose message might repeat a request's raw input (Hummingbird's form decoder
/// does, and USSD input carries PINs).
public func safeDescription(of error: any Error) -> String {
    switch error {
    case let error as any LogSafeError: return error.description
    case is CancellationError: return "cancelled"
    default: return String(reflecting: type(of: error))
    }
}
