/// Settings shared by every request of one ``CurlClient``.
public struct CurlConfiguration: Sendable, Hashable {
    /// Verify the server's certificate and host name. On unless a test turns it off.
    public var verifyTLS = true
    /// A PEM bundle of trusted CAs instead of the system's.
    public var caBundlePath: String?
    /// A response body larger than this fails the request instead of filling memory.
    public var maximumResponseBytes = 8 * 1024 * 1024
    /// Idle keep-alive connections kept for reuse.
    public var maximumCachedConnections = 64

    public init() {}
}
