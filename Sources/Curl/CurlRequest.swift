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

/// What the server answered.
public struct CurlResponse: Sendable {
    public var status: Int
    /// Header fields of the final response, in order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return self.headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The body decoded as UTF-8.
    public var text: String { String(decoding: self.body, as: UTF8.self) }
}
