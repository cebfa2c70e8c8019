import Foundation
import Basics
import GatewayHTTP
import Logging
import Menus
import MPesa
import MoMoGateway
import MPesaGateway
import Postgres
import Redis
import SMSChannel
import USSDChannel
import Wallet
import Settings
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
    public var postgres = PostgresConfiguration(connectionString: PostgresConfiguration.localURL)
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
    /// The personal-data keys (KEKs) that wrap each data subject's key (``readPersonalDataKeys``).
    public var personalDataKeys: PINKeySource?
    /// True when ``personalDataKeys`` is development's own key file, made when missing.
    public var personalDataKeyIsDevelopmentDefault = false
    /// `PERSONAL_DATA_KEYS_URL`: the key store's database; nil in development derives it
    /// (``keyStoreConfiguration``).
    public var personalDataStore: PostgresConfiguration?
    /// `PIN_PEPPER`: only to check scrypt PIN hashes from before PIN keys, each replaced by a
    /// value under the newest key at its customer's next right PIN. At least 16 bytes.
    public var pinPepper: [UInt8]?
    /// The wall clock that windows are measured against: the PIN reset's cooling-off, USSD's
    /// repeat window, the USSD and SMS rate limits' minutes. Not a setting: tests pass time in.
    public var now: @Sendable () -> Date = { Date() }
    /// `MSISDN_COUNTRIES`: the countries whose mobile numbers the deployment serves, as ISO codes
    /// (`KE`, `GH`, `NG`), comma-separated; the first is the one local numbers (`07...`) belong to.
    /// Default `KE`. Handed to every part that parses numbers.
    public var numberingPlan = NumberingPlan.kenya
    /// `CURRENCY` (ISO 4217, default Kenyan shillings) and `CURRENCY_FRACTIONS` (`on`/`off`, default off): the
    /// deployment's one currency, in whose minor units the ledger counts and in which every
    /// screen, SMS, tariff, tier and limit is written (``Currency``). The ledger refuses a second.
    public var currency = Currency.kenyanShilling
    /// `MOBILE_MONEY`: the rail deposits and withdrawals use, `mpesa` (default) or `mtn-momo`.
    public var mobileMoney = MobileMoneyRail.mpesa
    /// What every text says the same way: the currency and the rail's name (``Market``).
    public var market: Market { Market(currency: self.currency, mobileMoney: self.mobileMoney.displayName) }

    /// The mobile-money rails the gateway speaks.
    public enum MobileMoneyRail: String, Sendable, CaseIterable {
        /// Safaricom's M-Pesa through Daraja (Kenyan shillings).
        case mpesa
        /// MTN Mobile Money through the MoMo Open API (Ghana, Uganda, Rwanda, ...).
        case mtnMoMo = "mtn-momo"

        /// The name customers know it by.
        public var displayName: String { self == .mpesa ? "M-Pesa" : "MoMo" }
    }
    /// `SHUTDOWN_TIMEOUT_SECONDS`: longest graceful shutdown before the process gives up; default 25
    /// (under Kubernetes' 30-second termination grace period).
    public var shutdownTimeout = Duration.seconds(25)
    /// `DEPENDENCY_PROBE_SECONDS` (default 5): how often each replica probes Redis and Postgres for
    /// `gateway_dependency_up`. `OPERATIONS_GAUGES_SECONDS` (default 15): how often it reads the
    /// outbox, payouts, deposits, review queue and float for their gauges (``OperationsGauges``).
    public var dependencyProbeInterval = Duration.seconds(5)
    public var operationsGaugesInterval = Duration.seconds(15)

    /// The USSD channel's sessions, hops, limits and aggregators (``USSDSettings``).
    public var ussd = USSDSettings()
    /// The ledger's PIN locks, corrections and group commit (``WalletSettings``).
    public var wallet = WalletSettings()
    /// `DIALECT_CALLBACK_TOKEN`: the token of those routes (`/ussd/hubtel/<token>`); falls back to
    /// `CALLBACK_TOKEN`; required in production when a dialect is served.
    public var dialectCallbackToken: String?
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
        "FLARES_USERID", "FLARES_PASSWORD", "DB_LOGIN_PASSWORD", "PERSONAL_DATA_KEY", "PERSONAL_DATA_KEY_FILE", "PERSONAL_DATA_PKCS11_MODULE",
        "PERSONAL_DATA_PKCS11_SLOT", "PERSONAL_DATA_PKCS11_LABEL", "PERSONAL_DATA_PKCS11_PIN", "PERSONAL_DATA_KEYS_URL", "REPORT_SMTP_URL",
        "DESK_DATABASE_URL", "DESK_SESSION_KEY", "ADMIN_TLS_KEY_FILE",
    ]
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
    /// `MOMO_CALLBACK_TOKEN`: the MoMo callback route's token; `CALLBACK_TOKEN` when unset.
    public var momoCallbackToken: String?
    public var momoToken: String? { self.momoCallbackToken ?? self.callbackToken }
    /// The `MOMO_*` settings (``MoMoSettings``), used when `MOBILE_MONEY=mtn-momo`.
    public var momo = MoMoSettings()
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
    /// Where `report daily --email` sends the reconciliation (``ReportMailSettings``).
    public var reportMail = ReportMailSettings()
    /// The staff desk on the admin listener (`DESK`, issue 33).
    public var desk = DeskConfiguration()

    public init() {}

    /// The deployment stage.
    public enum DeploymentEnvironment: String, Sendable {
        case development
        case production
    }

    /// The configuration to serve with: every production requirement checked. `serving: false` is
    /// for staff and operations commands (`customer`, `ledger`, `report`, `migrate`, ...), which
    /// need no serving secret: no PIN pepper or callback token is required or read for them.
    public static func load(environment: [String: String], file: [String: String] = [:], serving: Bool = true) throws(ConfigError) -> GatewayConfig {
        let reader = SettingsReader(environment: environment, file: file)
        var config = GatewayConfig()
        config.backendValues = reader.values
        try config.readServer(reader)
        (config.redis, config.postgres) = (try RedisConfiguration(reader: reader), try PostgresConfiguration(reader: reader))
        try config.readCountries(reader)
        config.wallet = try WalletSettings(reader: reader, currency: config.currency)
        config.ussd = try USSDSettings(reader: reader)
        try config.readCallbacks(reader)
        config.mpesa = try MPesaSettings(reader: reader)
        config.momo = try MoMoSettings(reader: reader)
        if let sent = config.momo.currency, sent != config.currency.code, config.momo.targetEnvironment != "sandbox" {
            // MoMo's amounts are the ledger's: another currency is only for MTN's sandbox (EUR).
            throw ConfigError(variable: "MOMO_CURRENCY", problem: "is \(sent), not CURRENCY (\(config.currency.code)): another currency is only for MTN's sandbox")
        }
        config.sms = try SMSSettings(reader: reader)
        config.reportMail = try ReportMailSettings(reader: reader)
        config.desk = try DeskConfiguration(reader: reader)
        try config.readSandbox(reader)
        try config.readPINKeys(reader, required: serving)
        try config.readPersonalDataKeys(reader, required: serving)
        try config.readBackendVariables(reader)
        guard serving else { return config }
        if let problem = config.desk.problem(environment: config.environment, adminPort: config.adminPort, adminHost: config.adminHost) { throw problem }
        if let problem = config.productionProblem { throw problem }
        return config
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
        if !self.ussd.dialects.isEmpty, self.dialectToken == nil {
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
        if self.mobileMoney == .mtnMoMo, self.momo.missing(publicBaseURL: self.publicBaseURL).isEmpty, let problem = self.momo.productionProblem {
            return problem
        }
        if self.mobileMoney == .mtnMoMo, self.momo.missing(publicBaseURL: self.publicBaseURL).isEmpty, self.momoToken == nil {
            return ConfigError(
                variable: "MOMO_CALLBACK_TOKEN",
                problem: "is required in production when MoMo is configured (or CALLBACK_TOKEN): anyone could post a callback that sets off status queries"
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
}

extension GatewayConfig.DeploymentEnvironment: CaseIterable {}

/// True for an address only this machine reaches (``TransportSecurity/isLoopback(_:)``).
public func isLoopback(_ host: String) -> Bool { TransportSecurity.isLoopback(host) }
