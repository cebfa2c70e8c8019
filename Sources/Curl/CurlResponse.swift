

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
