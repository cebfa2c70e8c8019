import Foundation
import GatewayHTTP
import MPesa
import MPesaGateway
import Sandbox
import SMSChannel
import Settings

/// The embedded sandbox's settings (`SANDBOX`, `SIMULATOR`, `SANDBOX_DELAY_MS`, `SANDBOX_SMTP_PORT`):
/// which providers are simulated on the gateway's own listener, whether the browser phone is
/// served, and whether a mail server keeps the reports mailed to it.
///
/// Development only. With `ENVIRONMENT=production` `auto` means off, and `on` stops start-up.
public struct SandboxSettings: Sendable {
    /// `auto`: in development, simulate each provider that has no credentials; `on`: simulate both
    /// (their credentials are ignored); `off`: simulate neither.
    public enum Switch: String, Sendable, CaseIterable {
        case auto, on, off
    }

    /// Daraja is simulated: the M-Pesa settings point at ``DarajaSandbox``.
    public var mpesa = false
    /// MTN MoMo is simulated (`MOBILE_MONEY=mtn-momo`): the MoMo settings point at ``MoMoSandbox``.
    public var momo = false
    /// Africa's Talking's messaging API is simulated: the SMS settings point at ``AfricasTalkingSandbox``.
    public var sms = false
    /// `GET /simulator`, the browser phone, is served.
    public var simulator = false
    /// The sample jobs API at `/sandbox/jobs` serves the Jobs option (no `JOBS_API_URL` set).
    public var jobs = false
    /// The mail server (``Sandbox/SandboxMailServer``) keeps what `report daily --email` sends: no
    /// `REPORT_SMTP_URL` set.
    public var mail = false
    /// `SANDBOX_SMTP_PORT`: the mail server's port on 127.0.0.1; default 2525. 0 takes a free port
    /// (for tests: a command in another process cannot find it).
    public var mailPort = 2525
    /// `SANDBOX_DELAY_MS`: how long the simulated customer takes to approve a prompt and Safaricom
    /// to pay out; default 2000.
    public var delay = Duration.milliseconds(2000)
    /// How long after a message its delivery report follows.
    public var deliveryDelay = Duration.milliseconds(500)
    /// The gateway's own address as the sandbox reaches it (`http://127.0.0.1:8080`); set once the
    /// port is known.
    public internal(set) var gatewayURL: String?

    public init() {}

    /// Any provider simulated.
    public var isOn: Bool { self.mpesa || self.momo || self.sms }
    /// Anything of the sandbox runs: a provider simulated, or the mail server.
    public var runs: Bool { self.isOn || self.mail }
}

extension GatewayConfig {
    /// Points the simulated providers' settings at the sandbox on this gateway's listener at
    /// `port`: Daraja's base URL and credentials, the callback base when `PUBLIC_BASE_URL` is unset,
    /// and Africa's Talking's base URL and account.
    public mutating func applySandbox(port: Int) {
        let host = ["0.0.0.0", "::", "", "localhost"].contains(self.httpHost) ? "127.0.0.1" : self.httpHost.contains(":") ? "[\(self.httpHost)]" : self.httpHost
        let base = "http://\(host):\(port)"
        self.sandbox.gatewayURL = base
        if self.sandbox.mpesa {
            self.mpesa.baseURL = base + DarajaSandbox.pathPrefix
            self.mpesa.consumerKey = DarajaSandbox.consumerKey
            self.mpesa.consumerSecret = DarajaSandbox.consumerSecret
            self.mpesa.shortcode = DarajaSandbox.shortcode
            self.mpesa.passkey = DarajaSandbox.passkey
            self.mpesa.transactionType = .paybill
            self.mpesa.tillNumber = nil
            self.mpesa.b2cShortcode = DarajaSandbox.b2cShortcode
            self.mpesa.initiatorName = DarajaSandbox.initiatorName
            self.mpesa.securityCredential = DarajaSandbox.securityCredential
            // The sandbox's paybill is its STK shortcode, asked about by the B2C initiator.
            self.mpesa.c2bShortcode = nil
            self.mpesa.c2bInitiatorName = nil
            self.mpesa.c2bSecurityCredential = nil
            if self.publicBaseURL == nil { self.publicBaseURL = base }
        }
        // The default menus' Jobs option: the sample jobs API, unless a real one is configured.
        if self.backendValues["JOBS_API_URL"]?.isEmpty ?? true {
            self.backendValues["JOBS_API_URL"] = base + JobsSandbox.pathPrefix
            self.backendValues["JOBS_API_KEY"] = JobsSandbox.apiKey
            self.sandbox.jobs = true
        }
        if self.sandbox.momo {
            self.momo.baseURL = base + MoMoSandbox.pathPrefix
            self.momo.targetEnvironment = "sandbox"
            self.momo.collection = (MoMoSandbox.collection.subscriptionKey, MoMoSandbox.collection.apiUser, MoMoSandbox.collection.apiKey)
            self.momo.disbursement = (MoMoSandbox.disbursement.subscriptionKey, MoMoSandbox.disbursement.apiUser, MoMoSandbox.disbursement.apiKey)
            if self.publicBaseURL == nil { self.publicBaseURL = base }
        }
        if self.sandbox.sms {
            self.sms.username = AfricasTalkingSandbox.username
            self.sms.apiKey = AfricasTalkingSandbox.apiKey
            self.sms.baseURL = base + AfricasTalkingSandbox.pathPrefix
        }
    }

    /// Why the sandbox or the browser phone must not run with this configuration: never in
    /// production. Checked by ``load(environment:file:)`` and again by ``buildApplication``.
    public var sandboxProblem: ConfigError? {
        if self.environment == .development && !isLoopback(self.httpHost) {
            // Development switches every safeguard off: not from outside unless asked, and even then
            // with nothing simulated.
            guard self.developmentListenPublic else {
                return ConfigError(
                    variable: "HTTP_HOST",
                    problem: "is \(self.httpHost), not loopback: development has no safeguards and is served on 127.0.0.1 only (DEVELOPMENT_LISTEN_PUBLIC=1 to serve there, without the sandbox and the browser phone)"
                )
            }
            if self.sandbox.runs { return ConfigError(variable: "SANDBOX", problem: "cannot be on when development listens on a public address") }
            if self.sandbox.simulator { return ConfigError(variable: "SIMULATOR", problem: "cannot be on when development listens on a public address") }
            return nil
        }
        guard self.environment == .production else { return nil }
        if self.sandbox.runs {
            return ConfigError(variable: "SANDBOX", problem: "cannot be on in production: it simulates M-Pesa payments and SMS (set auto or off)")
        }
        if self.sandbox.simulator {
            return ConfigError(variable: "SIMULATOR", problem: "cannot be on in production: the browser phone is for development (set auto or off)")
        }
        return nil
    }
}
