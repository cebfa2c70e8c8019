import Crypto

/// A Lua script run with EVALSHA, loaded with EVAL the first time a server lacks it.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// SHA-1 of the source, as Redis names cached scripts.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
