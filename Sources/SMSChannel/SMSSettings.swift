import AfricasTalking
import GatewayActions
import GatewayHTTP
import Settings

/// The SMS settings (`AT_*`, `SMS_*`). Without `AT_USERNAME` and `AT_API_KEY` the gateway still
/// takes inbound commands and queues every message; nothing is sent until they are set, and
/// `/readyz` says `sms: not configured`.
public struct SMSSettings: Sendable {
    public var username: String?
    public var apiKey: String?
    /// `AT_SMS_BASE_URL`: live by default; the sandbox is `https://api.sandbox.africastalking.com`.
    public var baseURL = AfricasTalkingSMS.Configuration.liveURL
    public var senderID: String?
    /// Attempts per message before a transient failure becomes final.
    public var maxAttempts = 8
    /// Messages per second per replica; 0 = unlimited.
    public var ratePerSecond = 10.0
    /// The first retry waits this long, each next one twice as long (with jitter), at most an hour.
    public var retryBase = Duration.seconds(5)
    /// How often an idle sender looks for due messages.
    public var pollInterval = Duration.seconds(1)
    public var requestTimeout = Duration.seconds(30)
    /// Inbound commands a number may send in a minute (`SMS_RATE_LIMIT_PER_MINUTE`); 0 = no limit.
    public var rateLimitPerMinute = 10

    public init() {}

    /// The `AT_*` and `SMS_*` settings from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        self.username = reader.value("AT_USERNAME")
        self.apiKey = reader.value("AT_API_KEY", secret: true)
        self.baseURL = try reader.string("AT_SMS_BASE_URL", default: self.baseURL)
        guard self.baseURL.hasPrefix("https://") || self.baseURL.hasPrefix("http://") else {
            throw ConfigError(variable: "AT_SMS_BASE_URL", problem: "must be an http(s) URL such as https://api.sandbox.africastalking.com")
        }
        self.senderID = reader.value("AT_SENDER_ID")
        self.maxAttempts = try reader.integer("SMS_MAX_ATTEMPTS", default: self.maxAttempts, in: 1...100)
        self.ratePerSecond = Double(try reader.integer("SMS_RATE_PER_SECOND", default: Int(self.ratePerSecond), in: 0...10_000))
        self.rateLimitPerMinute = try reader.integer("SMS_RATE_LIMIT_PER_MINUTE", default: self.rateLimitPerMinute, in: 0...100_000)
        }

    /// What the audit trail records of these settings when they change between start-ups.
    public var audited: [String: String] {
        ["sms.rate_limit_per_minute": String(self.rateLimitPerMinute)]
    }

    public var configuration: AfricasTalkingSMS.Configuration? {
        guard let username, let apiKey else { return nil }
        var configuration = AfricasTalkingSMS.Configuration(baseURL: self.baseURL, username: username, apiKey: apiKey, senderID: self.senderID)
        configuration.requestTimeout = self.requestTimeout
        return configuration
    }
}
