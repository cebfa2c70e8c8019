import Basics

/// A failed Postgres call, postgres-nio's `PSQLError` style: a small set of codes, the SQLSTATE
/// for server errors, a `description` safe for logs, and the server's words only in
/// `debugDescription` (they can repeat values, e.g. a unique violation's key).
public struct PostgresError: LogSafeError, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// Could not connect, or the connection broke during a call.
        case connection
        /// The server refused the statement; see ``sqlState``.
        case server
        /// A column could not be decoded as the type asked for.
        case decoding
        /// The caller broke the API's contract (e.g. a column out of range).
        case usage
        /// The server committed the transaction but stopped waiting for a synchronous standby to
        /// confirm it (a cancel request arrived during COMMIT, e.g. an operator's
        /// `pg_cancel_backend`; `statement_timeout` does not cover the wait): the commit is on the
        /// primary only, and a failover before the standby catches up would lose it. As unknown an
        /// outcome as a connection lost during COMMIT; never report it as done.
        case unconfirmedCommit
    }

    public let code: Code
    /// The five-character SQLSTATE for `.server` errors, e.g. `23505`.
    public let sqlState: String?
    /// The constraint a `.server` error names, when it names one.
    public let constraint: String?
    let detail: String

    init(code: Code, sqlState: String? = nil, constraint: String? = nil, detail: String) {
        self.code = code
        self.sqlState = sqlState
        self.constraint = constraint
        self.detail = detail
    }

    /// 23505: a unique or primary key constraint refused a duplicate.
    public var isUniqueViolation: Bool { self.sqlState == "23505" }
    /// 23514: a CHECK constraint refused a row.
    public var isCheckViolation: Bool { self.sqlState == "23514" }
    /// 40001: a serializable transaction lost a conflict and may be retried.
    public var isSerializationFailure: Bool { self.sqlState == "40001" }
    /// 40P01: the server broke a deadlock by aborting this transaction, which may be retried.
    public var isDeadlock: Bool { self.sqlState == "40P01" }
    /// 57014: the statement ran past `statement_timeout` (or was cancelled).
    public var isQueryCanceled: Bool { self.sqlState == "57014" }
    /// The words of an exception the schema's own functions and triggers raise for people (SQLSTATE
    /// class `UL`: four eyes, limits, a request already decided); nil for every other error, whose
    /// words may repeat values and stay in ``debugDescription``.
    public var refusal: String? { self.code == .server && self.sqlState?.hasPrefix("UL") == true ? self.detail : nil }
    /// True for failures that a fresh attempt of the whole transaction can clear.
    public var isTransient: Bool { self.isSerializationFailure || self.isDeadlock }

    public var description: String {
        switch self.code {
        case .connection: return "postgres connection failed"
        case .server:
            var text = "postgres error SQLSTATE \(self.sqlState ?? "?????")"
            if let constraint { text += " on constraint \(constraint)" }
            return text
        case .decoding: return "postgres column could not be decoded: \(self.detail)"
        case .usage: return "postgres client misuse: \(self.detail)"
        case .unconfirmedCommit: return "postgres commit not confirmed by a synchronous standby"
        }
    }

    public var debugDescription: String { "\(self.description): \(self.detail)" }
}
