import Foundation

/// The caller-chosen id of a money movement; the same key never moves money twice.
public struct IdempotencyKey: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    public init?(_ value: String) {
        guard (1...200).contains(value.utf8.count) else { return nil }
        self.value = value
    }

    public var description: String { self.value }
}
