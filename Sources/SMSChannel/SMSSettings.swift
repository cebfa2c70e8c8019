import AfricasTalking
import GatewayActions
import GatewayHTTP

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

    public init() {}

    public var configuration: AfricasTalkingSMS.Configuration? {
        guard let username, let apiKey else { return nil }
        var configuration = AfricasTalkingSMS.Configuration(baseURL: self.baseURL, username: username, apiKey: apiKey, senderID: self.senderID)
        configuration.requestTimeout = self.requestTimeout
        return configuration
    }
}
