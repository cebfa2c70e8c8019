import CCurl

/// Where mail goes: an `smtps://` or `smtp://` URL, its user and password (if any) in the userinfo
/// (`smtps://user:password@mail.example.com:465`; libcurl logs in with them), read by libcurl's own
/// URL parser so that the host checked here is the host libcurl connects to.
///
/// TLS is the rule: `smtps://` speaks it from the first byte; `smtp://` to any host but this
/// machine must upgrade with STARTTLS or the send fails (``Security/startTLS``, libcurl's
/// `CURLUSESSL_ALL`); only `smtp://` to loopback (a relay on the host, the development sandbox)
/// goes in the clear. The certificate and host name are checked as for HTTPS.
///
/// `description` is the URL without its userinfo: the password is never logged or printed.
public struct MailServer: Sendable, Hashable, CustomStringConvertible {
    public enum Security: String, Sendable, Hashable {
        /// `smtps://`: TLS from the first byte.
        case implicitTLS
        /// `smtp://` to another host: STARTTLS required before anything is sent.
        case startTLS
        /// `smtp://` to loopback: no TLS.
        case none
    }

    /// The URL as given, credentials included: for libcurl only.
    let url: String
    public let scheme: String
    public let host: String
    public let port: Int
    public let security: Security
    /// True when the URL names a user (and so a login).
    public let hasCredentials: Bool

    /// `url` checked; the error names what is wrong, never the URL.
    public init(url: String) throws(MailError) {
        guard let parts = Self.parse(url) else { throw MailError(.invalidServer, "must be an smtps:// or smtp:// URL such as smtps://user:password@mail.example.com:465") }
        guard parts.scheme == "smtp" || parts.scheme == "smtps" else { throw MailError(.invalidServer, "must start with smtps:// or smtp://") }
        guard let host = parts.host, !host.isEmpty else { throw MailError(.invalidServer, "has no host") }
        guard let port = Int(parts.port ?? ""), (1...65535).contains(port) else { throw MailError(.invalidServer, "has no valid port") }
        self.url = url
        self.scheme = parts.scheme
        self.host = host
        self.port = port
        self.hasCredentials = parts.user != nil
        self.security = parts.scheme == "smtps" ? .implicitTLS : Self.isLoopback(host) ? .none : .startTLS
    }

    public var description: String { "\(self.scheme)://\(self.host):\(self.port)" }

    /// `127.x.x.x`, `[::1]` or `localhost`: addresses only this machine answers.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) && (UInt8($0) != nil) }
    }

    /// The parts libcurl reads from `url`; nil when it does not parse.
    private static func parse(_ url: String) -> (scheme: String, host: String?, port: String?, user: String?)? {
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        guard curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK else { return nil }
        func part(_ which: CURLUPart, _ flags: Int32 = 0) -> String? {
            var value: UnsafeMutablePointer<CChar>?
            guard curl_url_get(handle, which, &value, UInt32(flags)) == CURLUE_OK, let value else { return nil }
            defer { curl_free(value) }
            return String(cString: value)
        }
        guard let scheme = part(CURLUPART_SCHEME) else { return nil }
        return (scheme.lowercased(), part(CURLUPART_HOST), part(CURLUPART_PORT, CURLU_DEFAULT_PORT), part(CURLUPART_USER))
    }
}
