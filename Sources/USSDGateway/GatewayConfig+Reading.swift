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

/// Each section of the environment read into the configuration, in the order `load` reads them.
extension GatewayConfig {
    /// The process: stage, listener, logs, menus, shutdown.
    mutating func readServer(_ reader: Reader) throws(ConfigError) {
        self.environment = try reader.oneOf("ENVIRONMENT", default: self.environment)
        self.httpHost = try reader.string("HTTP_HOST", default: self.httpHost)
        self.httpPort = try reader.integer("HTTP_PORT", default: self.httpPort, in: 0...65535)
        self.logLevel = try reader.oneOf("LOG_LEVEL", default: self.logLevel)
        self.menusPath = try reader.string("MENUS_PATH", default: self.menusPath)
        self.shutdownTimeout = try reader.seconds("SHUTDOWN_TIMEOUT_SECONDS", default: self.shutdownTimeout, in: 1...3600)
    }

    /// Redis and Postgres.
    mutating func readStores(_ reader: Reader) throws(ConfigError) {
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
    mutating func readSessions(_ reader: Reader) throws(ConfigError) {
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
    mutating func readCallbacks(_ reader: Reader) throws(ConfigError) {
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
    mutating func readMPesa(_ reader: Reader) throws(ConfigError) {
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
    mutating func readSMS(_ reader: Reader) throws(ConfigError) {
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
    mutating func readSandbox(_ reader: Reader) throws(ConfigError) {
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
    mutating func readBackendVariables(_ reader: Reader) throws(ConfigError) {
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
    mutating func readPINKeys(_ reader: Reader, required: Bool) throws(ConfigError) {
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
}
