/// A failed Redis call: the connection, the server's error reply, or an unexpected reply shape.
///
/// `description` never contains keys, values or the password; a server error keeps only its
/// leading error code (`WRONGTYPE`, `NOSCRIPT`, `ERR`, ...).
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// Could not connect, or the connection broke (closed, reset, timed out) during a command.
        case connection
        /// A command's socket read or write timed out; the connection was dropped.
        case timeout
        /// The server answered with an error reply.
        case server
        /// The reply did not have the shape the command promises.
        case unexpectedReply
    }

    public let code: Code
    /// For `.server`: the first word of the reply (`ERR`, `WRONGTYPE`, `NOSCRIPT`, ...).
    public let serverCode: String?
    /// Full detail for debugging; may repeat what the server said, never shown to users.
    public let detail: String

    init(code: Code, serverCode: String? = nil, detail: String) {
        self.code = code
        self.serverCode = serverCode
        self.detail = detail
    }

    static func server(_ message: String) -> RedisError {
        let first = message.split(separator: " ", maxSplits: 1).first.map(String.init) ?? "ERR"
        return RedisError(code: .server, serverCode: first, detail: message)
    }

    /// EVALSHA named a script the server does not have cached.
    public var isNoScript: Bool { self.serverCode == "NOSCRIPT" }

    public var description: String {
        switch self.code {
        case .connection: return "redis connection failed"
        case .timeout: return "redis command timed out"
        case .server: return "redis server error \(self.serverCode ?? "ERR")"
        case .unexpectedReply: return "redis reply had an unexpected shape"
        }
    }

    public var debugDescription: String { "\(self.description): \(self.detail)" }
}
