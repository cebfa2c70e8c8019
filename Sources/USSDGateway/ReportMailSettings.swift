import Curl
import Foundation
import Settings

/// Where `report daily --email` sends the day's reconciliation: `REPORT_SMTP_URL`,
/// `REPORT_EMAIL_TO`, `REPORT_EMAIL_FROM`.
///
/// The URL is a secret (its userinfo holds the SMTP password): read as one, never echoed in an
/// error, and shown only as ``MailServer``'s description, `smtps://host:port`. TLS is required to
/// any host but this machine (``MailServer/Security``). In development with nothing set, the
/// sandbox's mail server takes the mail (``GatewayConfig/readSandbox``).
public struct ReportMailSettings: Sendable {
    /// `REPORT_SMTP_URL`: `smtps://user:password@mail.example.com:465`, or `smtp://` (STARTTLS
    /// required, plain only to loopback); nil when unset.
    public var server: MailServer?
    /// `REPORT_EMAIL_TO`: comma-separated addresses; at most ``maximumRecipients``.
    public var recipients: [MailAddress] = []
    /// `REPORT_EMAIL_FROM`: default `ussd-gateway@` and this host's name.
    public var sender = ReportMailSettings.defaultSender()
    /// The server is the development sandbox's (`smtp://127.0.0.1:SANDBOX_SMTP_PORT`).
    public internal(set) var isSandbox = false

    /// A report goes to a few people, not a mailing list's worth.
    public static let maximumRecipients = 50

    public init() {}

    /// The `REPORT_*` mail settings from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        if let url = reader.value("REPORT_SMTP_URL", secret: true) {
            do {
                self.server = try MailServer(url: url)
            } catch {
                throw ConfigError(variable: "REPORT_SMTP_URL", problem: error.subject)
            }
        }
        self.recipients = try reader.list("REPORT_EMAIL_TO", skipBlanks: true, problem: { "\($0) is not a plain address such as finance@example.com" }) {
            MailAddress($0)
        }
        guard self.recipients.count <= Self.maximumRecipients else {
            throw ConfigError(variable: "REPORT_EMAIL_TO", problem: "names more than \(Self.maximumRecipients) addresses")
        }
        if let from = reader.value("REPORT_EMAIL_FROM") {
            guard let sender = MailAddress(from) else {
                throw ConfigError(variable: "REPORT_EMAIL_FROM", problem: "must be a plain address such as reports@example.com")
            }
            self.sender = sender
        }
    }

    /// Why `--email` cannot send with these settings: no server, or no recipient.
    public var problem: ConfigError? {
        if self.server == nil {
            return ConfigError(
                variable: "REPORT_SMTP_URL",
                problem: "is required to mail the report: an smtps:// or smtp:// URL such as smtps://user:password@mail.example.com:465")
        }
        if self.recipients.isEmpty {
            return ConfigError(variable: "REPORT_EMAIL_TO", problem: "is required to mail the report: comma-separated addresses such as finance@example.com")
        }
        return nil
    }

    /// Points the report's mail at the sandbox's mail server on this machine's `port`.
    mutating func useSandbox(port: Int) {
        self.server = try? MailServer(url: "smtp://127.0.0.1:\(port)")
        self.isSandbox = true
        if self.recipients.isEmpty { self.recipients = [MailAddress("finance@sandbox.invalid")!] }
    }

    /// `ussd-gateway@<host name>`, or `ussd-gateway@localhost` when the name is not a mail domain.
    static func defaultSender() -> MailAddress {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return MailAddress("ussd-gateway@\(host)") ?? MailAddress("ussd-gateway@localhost")!
    }
}
