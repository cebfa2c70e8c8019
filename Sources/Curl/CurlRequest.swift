/// An HTTP request for ``CurlClient``.
public struct CurlRequest: Sendable {
    public var method: String
    public var url: String
    /// Header fields in order; `Expect:` is always sent empty so bodies go without a 100-continue wait.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// The whole request, connect to last byte.
    public var timeout: Duration
    public var connectTimeout: Duration

    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(5)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}
