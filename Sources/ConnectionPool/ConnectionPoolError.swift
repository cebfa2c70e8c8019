import Basics

/// Why a pool could not hand out a connection.
public struct ConnectionPoolError: LogSafeError, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case acquireTimeout
        case shutdown
    }

    private let code: Code
    /// The pool's name, e.g. `redis` or `postgres`.
    public let pool: String
    /// How long the caller waited, for `acquireTimeout`.
    public let waited: Duration?

    /// Every connection stayed busy for the whole acquire timeout.
    public static func acquireTimeout(pool: String, waited: Duration) -> Self { .init(code: .acquireTimeout, pool: pool, waited: waited) }
    /// The pool is shutting down or shut down.
    public static func shutdown(pool: String) -> Self { .init(code: .shutdown, pool: pool, waited: nil) }

    /// True when the caller gave up waiting for a free connection.
    public var isAcquireTimeout: Bool { self.code == .acquireTimeout }
    /// True when the pool refused because it is closing.
    public var isShutdown: Bool { self.code == .shutdown }

    public var description: String {
        switch self.code {
        case .acquireTimeout:
            return "\(self.pool) pool exhausted: no connection became free within \(self.waited.map { "\($0)" } ?? "the timeout")"
        case .shutdown:
            return "\(self.pool) pool is shut down"
        }
    }
}
