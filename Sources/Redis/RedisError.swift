import Basics

/// A failed Redis call: the connection, the server's error reply, or an unexpected reply shape.
///
/// `description` never contains keys, values or the password; a server error keeps only its
/// leading error code (`WRONGTYPE`, `NOSCRIPT`, `ERR`, ...).
public struct RedisError: LogSafeError, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// Could not connect, or the connection broke (closed, reset, timed out) during a command.
        case connection
        /// A command's socket read or write timed out; the connection was dropped.
        case timeout
        /// The server answered with an error reply.
        case server
        /// The reply did not have the shape the command promises.
        case unexpectedReply
        /// No TLS session (`rediss://`): the server's certificate was not trusted, the server does
        /// not speak TLS, or the CA file could not be read. Retrying does not help.
        case tls
    }

    public let code: Code
    /// For `.server`: the first word of the reply (`ERR`, `WRONGTYPE`, `NOSCRIPT`, ...).
    public let serverCode: String?
    /// Full detail for debugging; may repeat what the server said, never shown to users.
    public let detail: String

    /// The command never left this process (no connection could be made), so sending it again,
    /// to another node, cannot run it twice.
    var notSent = false
    /// For `.tls`: what went wrong, in words safe to show.
    var tlsProblem: TLSProblem?

    /// A TLS failure no retry mends: a certificate not trusted or not naming the host, a file that
    /// cannot be read. A handshake cut short or timed out (a node restarting) may pass next time.
    public var isPermanentTLSFailure: Bool {
        guard self.code == .tls else { return false }
        switch self.tlsProblem {
        case .untrusted, .wrongHost, .notTLS, .unreadableCAFile, .unreadableClientCertificate: return true
        default: return false
        }
    }

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

    /// A Redis Cluster redirect: `MOVED slot host:port` (the slot has a new owner) or
    /// `ASK slot host:port` (the slot is migrating; ask there once). The command did not run.
    var redirect: (moved: Bool, slot: Int, endpoint: RedisEndpoint)? {
        guard self.code == .server, self.serverCode == "MOVED" || self.serverCode == "ASK" else { return nil }
        let parts = self.detail.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<ClusterSlot.count).contains(slot),
            let endpoint = RedisEndpoint(redirect: parts[2])
        else { return nil }
        return (self.serverCode == "MOVED", slot, endpoint)
    }

    /// A Redis Cluster refusal that passes: `TRYAGAIN` (a multi-key command during a migration),
    /// `CLUSTERDOWN` (slots without an owner while a failover runs). The command did not run.
    var isClusterTransient: Bool {
        self.code == .server && (self.serverCode == "TRYAGAIN" || self.serverCode == "CLUSTERDOWN")
    }

    public var description: String {
        switch self.code {
        case .connection: return "redis connection failed"
        case .timeout: return "redis command timed out"
        case .server: return "redis server error \(self.serverCode ?? "ERR")"
        case .unexpectedReply: return "redis reply had an unexpected shape"
        case .tls: return "redis TLS failed: \(self.tlsProblem?.rawValue ?? "no TLS session")"
        }
    }

    public var debugDescription: String { "\(self.description): \(self.detail)" }
}
