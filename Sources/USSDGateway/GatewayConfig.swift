import Foundation
import Basics
import GatewayHTTP
import Logging
import Menus
import MPesa
import MPesaGateway
import Postgres
import Redis
import SMSChannel
import Wallet
import Synchronization

/// Everything the gateway reads from its environment, parsed once at start-up.
///
/// Each field's default sits next to it; ``load(environment:)`` is the one place environment
/// variables are read. A bad value stops start-up with a ``ConfigError`` naming the variable.
public struct GatewayConfig: Sendable {
    /// `ENVIRONMENT`: `development` relaxes production-only requirements; default `production`.
    public var environment: DeploymentEnvironment = .production
    /// `HTTP_HOST`: address to listen on; default `127.0.0.1` (containers set `0.0.0.0`).
    public var httpHost = "127.0.0.1"
    /// `HTTP_PORT`: default 8080.
    public var httpPort = 8080
    /// `REDIS_URL`: `redis://[:password@]host:port/db`, or `redis+cluster://[:password@]host:port,host:port...`
    /// for a Redis Cluster (seeds; the rest is learned); default `redis://127.0.0.1:6379/0`. `rediss://`
    /// and `rediss+cluster://` speak TLS, trusting `REDIS_CA_FILE` (PEM; default the system's roots),
    /// with `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` for a server that wants a client certificate.
    public var redis = RedisConfiguration()
    /// `DATABASE_URL`: a libpq URL or connection string; default `postgres://ussd@127.0.0.1:5432/ussd`.
    public var postgres = PostgresConfiguration(connectionString: "postgres://ussd@127.0.0.1:5432/ussd")
    /// `MENUS_PATH`: the journeys file; default `menus.json` in the working directory.
    public var menusPath = "menus.json"
    /// `LOG_LEVEL`: trace, debug, info, notice, warning, error or critical; default `info`.
    public var logLevel = Logger.Level.info
    /// The PIN keys (SECURITY.md: PIN keys), one of: `PIN_KEY_FILE` (a file of versioned keys),
    /// `PIN_KEY` (`<version>:<hex>,...` from a secret store), or a PKCS#11 token
    /// (`PIN_PKCS11_MODULE`, `PIN_PKCS11_SLOT` (a slot's number or the token's label),
    /// `PIN_PKCS11_LABEL` (default `ussd-gateway-pin`), `PIN_PKCS11_PIN`). Required to serve in
    /// production; development without one uses `.data/pin.keys`, made with a random key on first use.
    public var pinKeys: PINKeySource?
    /// True when ``pinKeys`` is development's own key file, made when missing.
    public var pinKeyIsDevelopmentDefault = false
    /// `PIN_PEPPER`: only to check scrypt PIN hashes from before PIN keys, each replaced by a
    /// value under the newest key at its customer's next right PIN. At least 16 bytes.
    public var pinPepper: [UInt8]?
    /// `PIN_LOCK_MINUTES`: how long three wrong PINs lock a customer; default 30.
    public var pinLockMinutes = 30
    /// `PIN_RESET_COOLDOWN_HOURS` (0 to 720, default 24) and `PIN_RESET_COOLDOWN_LIMIT` (whole
    /// shillings, default 1,000): for that long after a customer sets the PIN an approved reset asked
    /// for, sends and withdrawals above the limit are refused (balance and deposits work), as banks
    /// do after a SIM swap. 0 hours turns the window off.
    public var pinResetCooldown = Wallet.PINResetCooldown()
    /// `LEDGER_DUAL_APPROVAL_ABOVE` (whole shillings, default 100,000): corrections and reversals
    /// above it need two approvers. `LEDGER_ADJUST_MAX` (default 1,000,000): no adjustment may
    /// exceed it. Written to the database by `ussd-gateway migrate`, where the checks run.
    /// The wall clock the cooling-off window is measured against (tests pass time in).
    public var now: @Sendable () -> Date = { Date() }
    public var ledgerDualApprovalAbove: Int64 = 10_000_000
    public var ledgerAdjustMax: Int64 = 100_000_000
    /// `MSISDN_COUNTRIES`: the countries whose mobile numbers the deployment serves, as ISO codes
    /// (`KE`, `GH`, `NG`), comma-separated; the first is the one local numbers (`07...`) belong to.
    /// Default `KE`. Applied process-wide by ``applyProcessWide()``.
    public var msisdnCountries: [MSISDN.Country] = [.kenya]
    /// `WALLET_COMMIT_LANES` (1 to 64, default 2) and `WALLET_COMMIT_BATCH` (1 to 256, default 64;
    /// 1 turns it off): group commit of wallet movements and deposit completions. More lanes suit
    /// a database server with more cores.
    public var groupCommit = Wallet.GroupCommit()
    /// `SHUTDOWN_TIMEOUT_SECONDS`: longest graceful shutdown before the process gives up; default 25
    /// (under Kubernetes' 30-second termination grace period).
    public var shutdownTimeout = Duration.seconds(25)

    /// `SESSION_TTL_SECONDS`: how long a USSD session lives in Redis after its last hop; default 120.
    public var sessionTTLSeconds = 120
    /// `RESUME_WINDOW_SECONDS`: how long after its last hop an unfinished session can be resumed
    /// by dialling again; default menus.json's `resumeWindowSeconds`, else 300. 0 turns resume off.
    public var resumeWindowSeconds: Int?
    /// `HOP_DEADLINE_MS`: longest a hop waits for its action before answering "we are processing
    /// your request" and letting it finish; default 4000.
    public var hopDeadline = Duration.milliseconds(4000)
    /// `USSD_RATE_LIMIT_PER_MINUTE`: new hops per number per minute; 0 turns it off; default 30.
    public var ussdRateLimitPerMinute = 30
    /// `USSD_REPEAT_WINDOW_MS`: in a dialect that sends only the latest input and no hop number
    /// (Nalo, Arkesel, Flares), how long after a hop's answer the same input again is that hop
    /// repeated rather than the answer to the next screen; default 2000.
    public var ussdRepeatWindow = Duration.milliseconds(2000)
    /// `USSD_DIALECTS`: the aggregators served besides Africa's Talking, among `hubtel`, `nalo`,
    /// `arkesel` and `flares` (comma-separated); default none. Each adds its route.
    public var ussdDialects: [String] = []
    /// `DIALECT_CALLBACK_TOKEN`: the token of those routes (`/ussd/hubtel/<token>`); falls back to
    /// `CALLBACK_TOKEN`; required in production when a dialect is served.
    public var dialectCallbackToken: String?
    /// `FLARES_USERID` and `FLARES_PASSWORD`: when set, every Flares query must carry them.
    public var flaresUser: String?
    public var flaresPassword: String?
    /// The token guarding the other aggregators' routes.
    public var dialectToken: String? { self.dialectCallbackToken ?? self.callbackToken }
    /// The settings (the environment over the config file) a backend may be given, for what
    /// menus.json names by `env:` reference: its backends' URLs and keys (`JOBS_API_URL`,
    /// `JOBS_API_KEY`); only those ``backendVariables`` permits. Never logged.
    public var backendValues: [String: String] = [:]
    /// Which variables a backend's `env:` may name: `BACKEND_*`, `JOBS_API_*` and those listed in
    /// `BACKEND_ENV_ALLOW`, never one of the gateway's own settings.
    public var backendVariables = BackendVariables()
    /// `DEVELOPMENT_LISTEN_PUBLIC=1`: lets a development gateway listen on a non-loopback
    /// `HTTP_HOST`, with no sandbox and no browser phone there.
    public var developmentListenPublic = false
    /// The gateway's secrets: never a backend's, whether or not this configuration reads them.
    public static let secretVariables: Set<String> = [
        "PIN_PEPPER", "PIN_KEY", "PIN_KEY_FILE", "PIN_PKCS11_MODULE", "PIN_PKCS11_SLOT", "PIN_PKCS11_LABEL", "PIN_PKCS11_PIN", "DATABASE_URL",
        "REDIS_URL", "REDIS_CA_FILE", "CALLBACK_TOKEN", "AT_CALLBACK_TOKEN", "MPESA_CALLBACK_TOKEN", "DIALECT_CALLBACK_TOKEN", "AT_API_KEY",
        "AT_USERNAME", "MPESA_CONSUMER_KEY", "MPESA_CONSUMER_SECRET", "MPESA_PASSKEY", "MPESA_SECURITY_CREDENTIAL", "MPESA_C2B_SECURITY_CREDENTIAL",
        "FLARES_USERID", "FLARES_PASSWORD", "DB_LOGIN_PASSWORD",
    ]
    /// The dialects `USSD_DIALECTS` may name.
    public static let knownDialects = ["hubtel", "nalo", "arkesel", "flares"]
    /// `SMS_RATE_LIMIT_PER_MINUTE`: inbound SMS commands per number per minute; over it one polite
    /// reply, then silence; 0 turns it off; default 10.
    public var smsRateLimitPerMinute = 10
    /// `CALLBACK_TOKEN`: when set, every provider callback path carries it as one extra trailing
    /// segment (`/ussd/africastalking/<token>`); anything else is 404. Each provider's own token
    /// (``mpesaCallbackToken``, ``africasTalkingCallbackToken``) takes its place for that provider.
    public var callbackToken: String?
    /// `MPESA_CALLBACK_TOKEN`: the token of Safaricom's callback routes; falls back to `CALLBACK_TOKEN`.
    public var mpesaCallbackToken: String?
    /// `AT_CALLBACK_TOKEN`: the token of Africa's Talking's USSD and SMS callback routes; falls back
    /// to `CALLBACK_TOKEN`. With one token per provider, a leak at one opens nothing at the other.
    public var africasTalkingCallbackToken: String?
    /// The token guarding the M-Pesa routes.
    public var mpesaToken: String? { self.mpesaCallbackToken ?? self.callbackToken }
    /// The token guarding the Africa's Talking routes.
    public var africasTalkingToken: String? { self.africasTalkingCallbackToken ?? self.callbackToken }
    /// Shortest callback token taken (`openssl rand -hex 16` gives 32 characters).
    public static let minimumTokenLength = 24
    /// `ADMIN_HOST` / `ADMIN_PORT`: when `ADMIN_PORT` is set, `/readyz` and `/metrics` are served on
    /// this separate listener (default host 127.0.0.1) and no longer on the public callback port.
    public var adminHost = "127.0.0.1"
    public var adminPort: Int?
    /// `CALLBACK_ALLOWED_CIDRS`: comma-separated source networks allowed to call provider routes;
    /// empty allows any.
    public var callbackAllowedCIDRs: [CIDR] = []
    /// `TRUSTED_PROXY_CIDRS`: proxies whose `X-Forwarded-For` is believed; empty believes none.
    public var trustedProxyCIDRs: [CIDR] = []

    /// The gateway's public base URL (`PUBLIC_BASE_URL`); provider callback URLs are built from it.
    public var publicBaseURL: String?
    /// Daraja (M-Pesa) settings.
    public var mpesa = MPesaSettings()
    /// Africa's Talking SMS settings.
    public var sms = SMSSettings()
    /// The embedded sandbox and the browser phone (development only).
    public var sandbox = SandboxSettings()

    public init() {}

    /// The deployment stage.
    public enum DeploymentEnvironment: String, Sendable {
        case development
        case production
    }

    /// Reads the configuration from environment variables, overriding `file` entries (the optional
    /// config file, same keys).
    /// Applies what is process-wide rather than per client: the countries whose numbers
    /// ``MSISDN`` parses. Every command calls it once, right after loading.
    public func applyProcessWide() {
        MSISDN.countries = self.msisdnCountries
    }

    /// The configuration to serve with: every production requirement checked. `serving: false` is
    /// for staff and operations commands (`customer`, `ledger`, `report`, `migrate`, ...), which
    /// need no serving secret: no PIN pepper or callback token is required or read for them.
    public static func load(environment: [String: String], file: [String: String] = [:], serving: Bool = true) throws(ConfigError) -> GatewayConfig {
        let reader = Reader(values: file.merging(environment) { _, fromEnvironment in fromEnvironment })
        var config = GatewayConfig()
        config.backendValues = reader.values
        try config.readServer(reader)
        try config.readStores(reader)
        try config.readSessions(reader)
        try config.readCallbacks(reader)
        try config.readMPesa(reader)
        try config.readSMS(reader)
        try config.readSandbox(reader)
        try config.readPINKeys(reader, required: serving)
        try config.readBackendVariables(reader)
        guard serving else { return config }
        if let problem = config.productionProblem { throw problem }
        return config
    }

    /// The process: stage, listener, logs, menus, shutdown.
    private mutating func readServer(_ reader: Reader) throws(ConfigError) {
        self.environment = try reader.oneOf("ENVIRONMENT", default: self.environment)
        self.httpHost = try reader.string("HTTP_HOST", default: self.httpHost)
        self.httpPort = try reader.integer("HTTP_PORT", default: self.httpPort, in: 0...65535)
        self.logLevel = try reader.oneOf("LOG_LEVEL", default: self.logLevel)
        self.menusPath = try reader.string("MENUS_PATH", default: self.menusPath)
        self.shutdownTimeout = try reader.seconds("SHUTDOWN_TIMEOUT_SECONDS", default: self.shutdownTimeout, in: 1...3600)
    }

    /// Redis and Postgres.
    private mutating func readStores(_ reader: Reader) throws(ConfigError) {
        if let url = reader.value("REDIS_URL") {
            do {
                self.redis = try RedisConfiguration(url: url)
            } catch {
                throw ConfigError(variable: "REDIS_URL", problem: error.reason)
            }
        }
        self.redis.poolSize = try reader.integer("REDIS_POOL_SIZE", default: self.redis.poolSize, in: 1...64)
        self.redis.maximumInFlight = try reader.integer("REDIS_MAX_IN_FLIGHT", default: self.redis.maximumInFlight, in: 1...100_000)
        self.redis.commandTimeout = try reader.milliseconds("REDIS_TIMEOUT_MS", default: self.redis.commandTimeout, in: 10...60_000)
        (self.redis.tlsCAFile, self.redis.tlsCertificateFile, self.redis.tlsKeyFile) =
            (reader.value("REDIS_CA_FILE"), reader.value("REDIS_TLS_CERT_FILE"), reader.value("REDIS_TLS_KEY_FILE"))
        guard (self.redis.tlsCertificateFile == nil) == (self.redis.tlsKeyFile == nil) else {
            throw ConfigError(variable: "REDIS_TLS_KEY_FILE", problem: "and REDIS_TLS_CERT_FILE must be set together")
        }

        if let url = reader.value("DATABASE_URL") {
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") || url.contains("=") else {
                throw ConfigError(variable: "DATABASE_URL", problem: "must be a postgres:// URL or a libpq connection string")
            }
            self.postgres.connectionString = url
        }
        self.postgres.poolSize = try reader.integer("DATABASE_POOL_SIZE", default: self.postgres.poolSize, in: 1...512)
        self.groupCommit.lanes = try reader.integer("WALLET_COMMIT_LANES", default: self.groupCommit.lanes, in: 1...64)
        self.groupCommit.maximumBatch = try reader.integer("WALLET_COMMIT_BATCH", default: self.groupCommit.maximumBatch, in: 1...256)
        let statementTimeout = try reader.integer(
            "DATABASE_STATEMENT_TIMEOUT_MS", default: Int(self.postgres.statementTimeout?.inMilliseconds ?? 0), in: 0...3_600_000
        )
        self.postgres.statementTimeout = statementTimeout == 0 ? nil : .milliseconds(statementTimeout)
    }

    /// PINs, USSD sessions and their limits.
    private mutating func readSessions(_ reader: Reader) throws(ConfigError) {
        if let countries = reader.value("MSISDN_COUNTRIES") {
            var parsed: [MSISDN.Country] = []
            for code in countries.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).uppercased() }) {
                guard let country = MSISDN.Country(rawValue: code) else {
                    throw ConfigError(variable: "MSISDN_COUNTRIES", problem: "must be country codes among KE, GH, NG (got \(code))")
                }
                if !parsed.contains(country) { parsed.append(country) }
            }
            guard !parsed.isEmpty else { throw ConfigError(variable: "MSISDN_COUNTRIES", problem: "must name at least one country") }
            self.msisdnCountries = parsed
        }
        self.pinLockMinutes = try reader.integer("PIN_LOCK_MINUTES", default: self.pinLockMinutes, in: 1...1440)
        self.pinResetCooldown.window = .seconds(
            3600 * (try reader.integer("PIN_RESET_COOLDOWN_HOURS", default: Int(self.pinResetCooldown.window.components.seconds / 3600), in: 0...720)))
        self.pinResetCooldown.limit = Amount(
            cents: 100 * Int64(try reader.integer("PIN_RESET_COOLDOWN_LIMIT", default: Int(self.pinResetCooldown.limit.cents / 100), in: 0...1_000_000)))
        self.ledgerDualApprovalAbove =
            100 * Int64(try reader.integer("LEDGER_DUAL_APPROVAL_ABOVE", default: Int(self.ledgerDualApprovalAbove / 100), in: 1...1_000_000_000))
        self.ledgerAdjustMax = 100 * Int64(try reader.integer("LEDGER_ADJUST_MAX", default: Int(self.ledgerAdjustMax / 100), in: 1...1_000_000_000))
        self.sessionTTLSeconds = try reader.integer("SESSION_TTL_SECONDS", default: self.sessionTTLSeconds, in: 10...3600)
        if reader.value("RESUME_WINDOW_SECONDS") != nil {
            self.resumeWindowSeconds = try reader.integer("RESUME_WINDOW_SECONDS", default: 300, in: 0...86_400)
        }
        self.hopDeadline = try reader.milliseconds("HOP_DEADLINE_MS", default: self.hopDeadline, in: 100...14_000)
        self.ussdRateLimitPerMinute = try reader.integer("USSD_RATE_LIMIT_PER_MINUTE", default: self.ussdRateLimitPerMinute, in: 0...100_000)
        self.ussdRepeatWindow = try reader.milliseconds("USSD_REPEAT_WINDOW_MS", default: self.ussdRepeatWindow, in: 0...10_000)
        if let dialects = reader.value("USSD_DIALECTS") {
            var parsed: [String] = []
            for name in dialects.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !name.isEmpty {
                guard Self.knownDialects.contains(name) else {
                    throw ConfigError(variable: "USSD_DIALECTS", problem: "must name dialects among \(Self.knownDialects.joined(separator: ", ")) (got \(name))")
                }
                if !parsed.contains(name) { parsed.append(name) }
            }
            self.ussdDialects = parsed
        }
        self.flaresUser = reader.value("FLARES_USERID")
        self.flaresPassword = reader.value("FLARES_PASSWORD")
        if (self.flaresUser == nil) != (self.flaresPassword == nil) {
            throw ConfigError(variable: "FLARES_PASSWORD", problem: "and FLARES_USERID must be set together")
        }
    }

    /// Provider callbacks: tokens, the admin listener, source allowlists, the public address.
    private mutating func readCallbacks(_ reader: Reader) throws(ConfigError) {
        self.callbackToken = try reader.token("CALLBACK_TOKEN")
        self.mpesaCallbackToken = try reader.token("MPESA_CALLBACK_TOKEN")
        self.africasTalkingCallbackToken = try reader.token("AT_CALLBACK_TOKEN")
        self.dialectCallbackToken = try reader.token("DIALECT_CALLBACK_TOKEN")
        self.adminHost = try reader.string("ADMIN_HOST", default: self.adminHost)
        if reader.value("ADMIN_PORT") != nil {
            let port = try reader.integer("ADMIN_PORT", default: 0, in: 0...65535)
            guard port == 0 || port != self.httpPort else {
                throw ConfigError(variable: "ADMIN_PORT", problem: "must differ from HTTP_PORT (the admin listener is not the public callback port)")
            }
            self.adminPort = port
        }
        self.callbackAllowedCIDRs = try reader.cidrs("CALLBACK_ALLOWED_CIDRS")
        self.trustedProxyCIDRs = try reader.cidrs("TRUSTED_PROXY_CIDRS")
        if let url = reader.value("PUBLIC_BASE_URL") {
            // Safaricom posts callbacks only to https; plain http is for a gateway on this machine.
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].contains { url == $0 || url.hasPrefix($0 + ":") || url.hasPrefix($0 + "/") }
            guard url.hasPrefix("https://") || loopback else {
                throw ConfigError(variable: "PUBLIC_BASE_URL", problem: "must be an https URL such as https://gateway.example.com (http only for 127.0.0.1 or localhost)")
            }
            self.publicBaseURL = url
        }
    }

    /// Daraja (M-Pesa).
    private mutating func readMPesa(_ reader: Reader) throws(ConfigError) {
        self.mpesa.baseURL = try reader.string("MPESA_BASE_URL", default: self.mpesa.baseURL)
        self.mpesa.consumerKey = reader.value("MPESA_CONSUMER_KEY")
        self.mpesa.consumerSecret = reader.value("MPESA_CONSUMER_SECRET")
        self.mpesa.shortcode = reader.value("MPESA_SHORTCODE")
        self.mpesa.passkey = reader.value("MPESA_PASSKEY")
        self.mpesa.transactionType = try reader.oneOf("MPESA_TRANSACTION_TYPE", default: self.mpesa.transactionType)
        self.mpesa.tillNumber = reader.value("MPESA_TILL_NUMBER")
        self.mpesa.b2cShortcode = reader.value("MPESA_B2C_SHORTCODE")
        self.mpesa.initiatorName = reader.value("MPESA_INITIATOR_NAME")
        self.mpesa.securityCredential = reader.value("MPESA_SECURITY_CREDENTIAL")
        self.mpesa.c2bShortcode = reader.value("MPESA_C2B_SHORTCODE")
        self.mpesa.c2bResponseType = try reader.oneOf("MPESA_C2B_RESPONSE_TYPE", default: self.mpesa.c2bResponseType)
        self.mpesa.c2bUnconfirmedAfter = .seconds(
            60 * (try reader.integer("MPESA_C2B_UNCONFIRMED_MINUTES", default: Int(self.mpesa.c2bUnconfirmedAfter.components.seconds / 60), in: 1...10_080))
        )
        self.mpesa.c2bInitiatorName = reader.value("MPESA_C2B_INITIATOR_NAME")
        self.mpesa.c2bSecurityCredential = reader.value("MPESA_C2B_SECURITY_CREDENTIAL")
        // M-Pesa's own per-transaction maximum is 250,000 shillings.
        self.mpesa.c2bMaxAmount = Int64(try reader.integer("MPESA_C2B_MAX_AMOUNT", default: Int(self.mpesa.c2bMaxAmount), in: 1...250_000))
        self.mpesa.c2bReviewAfter = .seconds(
            60 * (try reader.integer("MPESA_C2B_REVIEW_AFTER_MINUTES", default: Int(self.mpesa.c2bReviewAfter.components.seconds / 60), in: 5...10_080))
        )
        self.mpesa.stkDelay = try reader.milliseconds("STK_DELAY_MS", default: self.mpesa.stkDelay, in: 0...30_000)
        self.mpesa.allowedCIDRs = try reader.cidrs("MPESA_ALLOWED_CIDRS")
        self.mpesa.requestTimeout = try reader.milliseconds("MPESA_TIMEOUT_MS", default: self.mpesa.requestTimeout, in: 100...55_000)
        self.mpesa.reconcileInterval = try reader.seconds("MPESA_RECONCILE_INTERVAL_SECONDS", default: self.mpesa.reconcileInterval, in: 1...3600)
        self.mpesa.payoutReviewAfterChecks = try reader.integer("MPESA_PAYOUT_REVIEW_AFTER_CHECKS", default: self.mpesa.payoutReviewAfterChecks, in: 1...1000)
        self.mpesa.payoutReviewAfter = .seconds(
            3600 * (try reader.integer("MPESA_PAYOUT_REVIEW_AFTER_HOURS", default: Int(self.mpesa.payoutReviewAfter.components.seconds / 3600), in: 1...720))
        )
    }

    /// Africa's Talking's messaging and the inbound command limit.
    private mutating func readSMS(_ reader: Reader) throws(ConfigError) {
        self.sms.username = reader.value("AT_USERNAME")
        self.sms.apiKey = reader.value("AT_API_KEY")
        self.sms.baseURL = try reader.string("AT_SMS_BASE_URL", default: self.sms.baseURL)
        guard self.sms.baseURL.hasPrefix("https://") || self.sms.baseURL.hasPrefix("http://") else {
            throw ConfigError(variable: "AT_SMS_BASE_URL", problem: "must be an http(s) URL such as https://api.sandbox.africastalking.com")
        }
        self.sms.senderID = reader.value("AT_SENDER_ID")
        self.sms.maxAttempts = try reader.integer("SMS_MAX_ATTEMPTS", default: self.sms.maxAttempts, in: 1...100)
        self.sms.ratePerSecond = Double(try reader.integer("SMS_RATE_PER_SECOND", default: Int(self.sms.ratePerSecond), in: 0...10_000))
        self.smsRateLimitPerMinute = try reader.integer("SMS_RATE_LIMIT_PER_MINUTE", default: self.smsRateLimitPerMinute, in: 0...100_000)
    }

    /// The sandbox: in development, each provider without credentials is simulated.
    private mutating func readSandbox(_ reader: Reader) throws(ConfigError) {
        let sandbox: SandboxSettings.Switch = try reader.oneOf("SANDBOX", default: .auto)
        let simulator: SandboxSettings.Switch = try reader.oneOf("SIMULATOR", default: .auto)
        self.developmentListenPublic = try reader.oneOf("DEVELOPMENT_LISTEN_PUBLIC", default: Flag.off) == .on
        if self.environment == .development && !isLoopback(self.httpHost) {
            // Reachable from outside: no simulated provider, no browser phone, unless asked for (refused below).
            self.sandbox.mpesa = sandbox == .on
            self.sandbox.sms = sandbox == .on
            self.sandbox.simulator = simulator == .on
        } else if self.environment == .development {
            let darajaCredentials = self.mpesa.consumerKey != nil || self.mpesa.consumerSecret != nil
            let africasTalkingCredentials = self.sms.username != nil || self.sms.apiKey != nil
            self.sandbox.mpesa = sandbox == .on || (sandbox == .auto && !darajaCredentials)
            self.sandbox.sms = sandbox == .on || (sandbox == .auto && !africasTalkingCredentials)
            self.sandbox.simulator = simulator != .off
        } else {
            self.sandbox.mpesa = sandbox == .on
            self.sandbox.sms = sandbox == .on
            self.sandbox.simulator = simulator == .on
        }
        self.sandbox.delay = try reader.milliseconds("SANDBOX_DELAY_MS", default: self.sandbox.delay, in: 0...60_000)
        if let problem = self.sandboxProblem { throw problem }
        // With HTTP_PORT=0 the port is known only when serving: `buildApplication` applies it then.
        if self.sandbox.isOn && self.httpPort != 0 { self.applySandbox(port: self.httpPort) }
    }

    /// `BACKEND_ENV_ALLOW`, after every other setting was read: a name the gateway reads itself is refused.
    private mutating func readBackendVariables(_ reader: Reader) throws(ConfigError) {
        let allowed = Set((reader.value("BACKEND_ENV_ALLOW") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        // libpq reads PG* variables (PGPASSWORD, PGSSLKEY...) itself: the gateway's own too.
        let own = reader.asked.names.withLock { $0 }.union(Self.secretVariables).union(reader.values.keys.filter { $0.hasPrefix("PG") })
        if let name = allowed.filter({ own.contains($0) || $0.hasPrefix("PG") }).sorted().first {
            throw ConfigError(variable: "BACKEND_ENV_ALLOW", problem: "names \(name), one of the gateway's own settings, which never leave it")
        }
        self.backendVariables = BackendVariables(allowed: allowed, forbidden: own)
        self.backendValues = self.backendValues.filter { self.backendVariables.permits($0.key) }
    }

    /// The PIN keys and `PIN_PEPPER`, never echoed: they are secrets.
    private mutating func readPINKeys(_ reader: Reader, required: Bool) throws(ConfigError) {
        if let pepper = reader.value("PIN_PEPPER") {
            guard pepper.utf8.count >= 16 else { throw ConfigError(variable: "PIN_PEPPER", problem: "must be at least 16 bytes") }
            self.pinPepper = Array(pepper.utf8)
        }
        var sources: [(String, PINKeySource)] = []
        if let path = reader.value("PIN_KEY_FILE") { sources.append(("PIN_KEY_FILE", .file(path: path))) }
        if let value = reader.value("PIN_KEY") { sources.append(("PIN_KEY", .environment(value))) }
        if let module = reader.value("PIN_PKCS11_MODULE") {
            guard let slot = reader.value("PIN_PKCS11_SLOT") else {
                throw ConfigError(variable: "PIN_PKCS11_SLOT", problem: "is required with PIN_PKCS11_MODULE: a slot's number or the token's label")
            }
            guard let pin = reader.value("PIN_PKCS11_PIN") else {
                throw ConfigError(variable: "PIN_PKCS11_PIN", problem: "is required with PIN_PKCS11_MODULE: the token's user PIN")
            }
            let label = try reader.string("PIN_PKCS11_LABEL", default: "ussd-gateway-pin")
            sources.append(("PIN_PKCS11_MODULE", .pkcs11(PKCS11Settings(module: module, slot: .init(slot), label: label, pin: pin))))
        }
        guard sources.count <= 1 else {
            throw ConfigError(variable: sources.map(\.0).joined(separator: ", "), problem: "name one source of PIN keys, not several")
        }
        if let (_, source) = sources.first {
            self.pinKeys = source
        } else if self.environment == .development {
            self.pinKeys = .file(path: ".data/pin.keys")
            self.pinKeyIsDevelopmentDefault = true
        } else if required {
            throw ConfigError(
                variable: "PIN_KEY_FILE",
                problem: "is required outside development (or PIN_KEY, or PIN_PKCS11_MODULE with its slot, label and PIN): the key PINs are checked under"
            )
        }
    }

    /// Opens the PIN keys (development's key file made on first use) and the vault over them.
    /// Reads a file or logs in to a token: called once, at start-up.
    public func openPINVault() throws(PINKeyError) -> PINVault {
        guard let source = self.pinKeys else {
            // A configuration built in code (tests, benchmarks) in development: a key of this process alone.
            guard self.environment == .development else { throw PINKeyError("no PIN keys are configured (PIN_KEY_FILE, PIN_KEY or PIN_PKCS11_MODULE)") }
            return PINVault(key: SoftwarePINKeys.randomKey(), legacyPepper: self.pinPepper)
        }
        if self.pinKeyIsDevelopmentDefault, case .file(let path) = source { try SoftwarePINKeys.createIfMissing(file: path) }
        return try PINVault(keys: try source.open(), legacyPepper: self.pinPepper)
    }

    /// Why this configuration must not serve in production, naming the variable: a configured
    /// provider's callback routes without a token would let anyone who finds the host post a
    /// "successful" payment or a USSD hop. Nil in development, which keeps working without tokens.
    public var productionProblem: ConfigError? {
        guard self.environment == .production else { return nil }
        if let problem = self.sandboxProblem { return problem }
        if self.africasTalkingToken == nil {
            return ConfigError(
                variable: "AT_CALLBACK_TOKEN",
                problem: "is required in production (or CALLBACK_TOKEN): Africa's Talking's USSD and SMS callback routes would be open to anyone"
            )
        }
        if !self.ussdDialects.isEmpty, self.dialectToken == nil {
            return ConfigError(
                variable: "DIALECT_CALLBACK_TOKEN",
                problem: "is required in production when USSD_DIALECTS names a dialect (or CALLBACK_TOKEN): its routes would be open to anyone"
            )
        }
        if self.mpesa.missing(publicBaseURL: self.publicBaseURL).isEmpty, self.mpesaToken == nil {
            return ConfigError(
                variable: "MPESA_CALLBACK_TOKEN",
                problem: "is required in production when M-Pesa is configured (or CALLBACK_TOKEN): anyone could post a paid STK callback"
            )
        }
        // The paybill routes serve once a shortcode is known, M-Pesa configured or not.
        if self.mpesa.paybillShortcode != nil, self.mpesaToken == nil {
            return ConfigError(
                variable: "MPESA_CALLBACK_TOKEN",
                problem: "is required in production when a paybill shortcode is set (or CALLBACK_TOKEN): anyone could post a paybill confirmation"
            )
        }
        return nil
    }

    /// Reads a config file of `KEY=VALUE` lines (blank lines and `#` comments skipped, values
    /// optionally quoted).
    public static func readFile(at path: String) throws(ConfigError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(variable: "config file \(path)", problem: "cannot be read")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(variable: "config file \(path)", problem: "line \(number + 1) is not KEY=VALUE")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    /// A yes/no setting.
    enum Flag: String, CaseIterable { case on = "1", off = "0" }

    private struct Reader {
        let values: [String: String]
        /// Every name asked for: the gateway's own settings, which a backend may never be given.
        let asked = AskedNames()

        func value(_ name: String) -> String? {
            self.asked.names.withLock { _ = $0.insert(name) }
            guard let value = self.values[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }

        func string(_ name: String, default fallback: String) throws(ConfigError) -> String {
            self.value(name) ?? fallback
        }

        func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
            guard let text = self.value(name) else { return fallback }
            guard let number = Int(text), range.contains(number) else {
                throw ConfigError(variable: name, problem: "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \"\(text)\")")
            }
            return number
        }

        /// A callback token: at least ``GatewayConfig/minimumTokenLength`` letters, digits, `-` or `_`
        /// (it is a path segment). Never echoed.
        func milliseconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
            .milliseconds(try self.integer(name, default: Int(fallback.inMilliseconds), in: range))
        }

        func seconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
            .seconds(try self.integer(name, default: Int(fallback.components.seconds), in: range))
        }

        func token(_ name: String) throws(ConfigError) -> String? {
            guard let token = self.value(name) else { return nil }
            guard token.utf8.count >= GatewayConfig.minimumTokenLength, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
                throw ConfigError(variable: name, problem: "must be at least \(GatewayConfig.minimumTokenLength) letters, digits, '-' or '_'")
            }
            return token
        }

        func cidrs(_ name: String) throws(ConfigError) -> [CIDR] {
            guard let text = self.value(name) else { return [] }
            var networks: [CIDR] = []
            for item in text.split(separator: ",") {
                let item = item.trimmingCharacters(in: .whitespaces)
                guard let network = CIDR(item) else {
                    throw ConfigError(variable: name, problem: "\"\(item)\" is not an address or network (e.g. 10.0.0.0/8, 2001:db8::/32)")
                }
                networks.append(network)
            }
            return networks
        }

        func oneOf<T: RawRepresentable & CaseIterable>(_ name: String, default fallback: T) throws(ConfigError) -> T where T.RawValue == String {
            guard let text = self.value(name) else { return fallback }
            guard let value = T.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
                let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(variable: name, problem: "must be one of \(allowed) (got \"\(text)\")")
            }
            return value
        }
    }
}

extension GatewayConfig.DeploymentEnvironment: CaseIterable {}

/// A configuration value that cannot be used: which variable, and what is wrong with it.
/// Values are echoed only for plain settings, never for URLs (they can hold passwords).
public struct ConfigError: LogSafeError, Sendable {
    public let variable: String
    public let problem: String
    public var description: String { "\(self.variable): \(self.problem)" }
}

/// Names a ``GatewayConfig`` reader was asked for.
final class AskedNames: Sendable {
    let names = Mutex<Set<String>>([])
}

/// True for an address only this machine reaches (``TransportSecurity/isLoopback(_:)``).
public func isLoopback(_ host: String) -> Bool { TransportSecurity.isLoopback(host) }
