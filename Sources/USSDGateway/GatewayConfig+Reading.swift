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
import Settings
import Synchronization

/// Each section of the environment read into the configuration, in the order `load` reads them.
extension GatewayConfig {
    /// The process: stage, listener, logs, menus, shutdown.
    mutating func readServer(_ reader: SettingsReader) throws(ConfigError) {
        self.environment = try reader.oneOf("ENVIRONMENT", default: self.environment)
        self.httpHost = try reader.string("HTTP_HOST", default: self.httpHost)
        self.httpPort = try reader.integer("HTTP_PORT", default: self.httpPort, in: 0...65535)
        self.logLevel = try reader.oneOf("LOG_LEVEL", default: self.logLevel)
        self.menusPath = try reader.string("MENUS_PATH", default: self.menusPath)
        self.shutdownTimeout = try reader.seconds("SHUTDOWN_TIMEOUT_SECONDS", default: self.shutdownTimeout, in: 1...3600)
        self.dependencyProbeInterval = try reader.seconds("DEPENDENCY_PROBE_SECONDS", default: self.dependencyProbeInterval, in: 1...300)
        self.operationsGaugesInterval = try reader.seconds("OPERATIONS_GAUGES_SECONDS", default: self.operationsGaugesInterval, in: 1...3600)
    }

    /// The countries whose numbers are served.
    mutating func readCountries(_ reader: SettingsReader) throws(ConfigError) {
        if let countries = reader.value("MSISDN_COUNTRIES") {
            var parsed: [MSISDN.Country] = []
            for code in countries.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).uppercased() }) {
                guard let country = MSISDN.Country(rawValue: code) else {
                    throw ConfigError(
                        variable: "MSISDN_COUNTRIES",
                        problem: "must be country codes among \(MSISDN.Country.allCases.map(\.rawValue).joined(separator: ", ")) (got \(code))")
                }
                if !parsed.contains(country) { parsed.append(country) }
            }
            guard !parsed.isEmpty else { throw ConfigError(variable: "MSISDN_COUNTRIES", problem: "must name at least one country") }
            self.numberingPlan = NumberingPlan(countries: parsed)!
        }
        let code = reader.string("CURRENCY", default: self.currency.code)
        let fractions = try reader.oneOf("CURRENCY_FRACTIONS", default: DeskConfiguration.Switch.off) == .on
        guard let currency = Currency(code: code, fractions: fractions) else {
            throw ConfigError(variable: "CURRENCY", problem: "must be an ISO 4217 code among \(Currency.table.keys.sorted().joined(separator: ", ")) (got \(code.prefix(8)))")
        }
        self.currency = currency
        self.mobileMoney = try reader.oneOf("MOBILE_MONEY", default: self.mobileMoney)
        if self.mobileMoney == .mpesa && self.currency.code != Currency.kenyanShilling.code {
            throw ConfigError(variable: "CURRENCY", problem: "is \(self.currency.code), but M-Pesa (MOBILE_MONEY=mpesa) moves Kenyan shillings only: set MOBILE_MONEY=mtn-momo for another market")
        }
    }

    /// Provider callbacks: tokens, the admin listener, source allowlists, the public address.
    mutating func readCallbacks(_ reader: SettingsReader) throws(ConfigError) {
        self.callbackToken = try reader.token("CALLBACK_TOKEN")
        self.mpesaCallbackToken = try reader.token("MPESA_CALLBACK_TOKEN")
        self.momoCallbackToken = try reader.token("MOMO_CALLBACK_TOKEN")
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
        self.callbackAllowedCIDRs = try reader.list("CALLBACK_ALLOWED_CIDRS", problem: CIDR.refusal, CIDR.init)
        self.trustedProxyCIDRs = try reader.list("TRUSTED_PROXY_CIDRS", problem: CIDR.refusal, CIDR.init)
        if let url = reader.value("PUBLIC_BASE_URL") {
            // Safaricom posts callbacks only to https; plain http is for a gateway on this machine.
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].contains { url == $0 || url.hasPrefix($0 + ":") || url.hasPrefix($0 + "/") }
            guard url.hasPrefix("https://") || loopback else {
                throw ConfigError(variable: "PUBLIC_BASE_URL", problem: "must be an https URL such as https://gateway.example.com (http only for 127.0.0.1 or localhost)")
            }
            self.publicBaseURL = url
        }
    }

    /// The sandbox: in development, each provider without credentials is simulated.
    mutating func readSandbox(_ reader: SettingsReader) throws(ConfigError) {
        let sandbox: SandboxSettings.Switch = try reader.oneOf("SANDBOX", default: .auto)
        let simulator: SandboxSettings.Switch = try reader.oneOf("SIMULATOR", default: .auto)
        self.developmentListenPublic = try reader.oneOf("DEVELOPMENT_LISTEN_PUBLIC", default: Flag.off) == .on
        if self.environment == .development && !isLoopback(self.httpHost) {
            // Reachable from outside: no simulated provider, no browser phone, unless asked for (refused below).
            self.sandbox.mpesa = sandbox == .on
            self.sandbox.sms = sandbox == .on
            self.sandbox.mail = sandbox == .on
            self.sandbox.simulator = simulator == .on
        } else if self.environment == .development {
            let darajaCredentials =
                self.mobileMoney == .mpesa
                ? self.mpesa.consumerKey != nil || self.mpesa.consumerSecret != nil
                : self.momo.collection.apiKey != nil || self.momo.disbursement.apiKey != nil
            let africasTalkingCredentials = self.sms.username != nil || self.sms.apiKey != nil
            self.sandbox.mpesa = sandbox == .on || (sandbox == .auto && !darajaCredentials)
            self.sandbox.sms = sandbox == .on || (sandbox == .auto && !africasTalkingCredentials)
            self.sandbox.mail = sandbox == .on || (sandbox == .auto && self.reportMail.server == nil)
            self.sandbox.simulator = simulator != .off
        } else {
            self.sandbox.mpesa = sandbox == .on
            self.sandbox.sms = sandbox == .on
            self.sandbox.mail = sandbox == .on
            self.sandbox.simulator = simulator == .on
        }
        self.sandbox.delay = try reader.milliseconds("SANDBOX_DELAY_MS", default: self.sandbox.delay, in: 0...60_000)
        self.sandbox.mailPort = try reader.integer("SANDBOX_SMTP_PORT", default: self.sandbox.mailPort, in: 0...65535)
        // The report's mail goes to the sandbox's server, whichever process sends it (`report daily --email`).
        if self.sandbox.mail && self.sandbox.mailPort != 0 { self.reportMail.useSandbox(port: self.sandbox.mailPort) }
        if let problem = self.sandboxProblem { throw problem }
        // With HTTP_PORT=0 the port is known only when serving: `buildApplication` applies it then.
        // One rail is simulated: the one the deployment moves money with.
        if self.mobileMoney == .mtnMoMo { (self.sandbox.momo, self.sandbox.mpesa) = (self.sandbox.mpesa, false) }
        if self.sandbox.isOn && self.httpPort != 0 { self.applySandbox(port: self.httpPort) }
    }

    /// `BACKEND_ENV_ALLOW`, after every other setting was read: a name the gateway reads itself is refused.
    mutating func readBackendVariables(_ reader: SettingsReader) throws(ConfigError) {
        let allowed = Set((reader.value("BACKEND_ENV_ALLOW") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        // libpq reads PG* variables (PGPASSWORD, PGSSLKEY...) itself: the gateway's own too.
        let own = reader.askedNames.union(Self.secretVariables).union(reader.values.keys.filter { $0.hasPrefix("PG") })
        if let name = allowed.filter({ own.contains($0) || $0.hasPrefix("PG") }).sorted().first {
            throw ConfigError(variable: "BACKEND_ENV_ALLOW", problem: "names \(name), one of the gateway's own settings, which never leave it")
        }
        self.backendVariables = BackendVariables(allowed: allowed, forbidden: own)
        self.backendValues = self.backendValues.filter { self.backendVariables.permits($0.key) }
    }

    /// The PIN keys and `PIN_PEPPER`, never echoed: they are secrets.
    mutating func readPINKeys(_ reader: SettingsReader, required: Bool) throws(ConfigError) {
        if let pepper = reader.value("PIN_PEPPER", secret: true) {
            guard pepper.utf8.count >= 16 else { throw ConfigError(variable: "PIN_PEPPER", problem: "must be at least 16 bytes") }
            self.pinPepper = Array(pepper.utf8)
        }
        var sources: [(String, PINKeySource)] = []
        if let path = reader.value("PIN_KEY_FILE") { sources.append(("PIN_KEY_FILE", .file(path: path))) }
        if let value = reader.value("PIN_KEY", secret: true) { sources.append(("PIN_KEY", .environment(value))) }
        if let module = reader.value("PIN_PKCS11_MODULE") {
            guard let slot = reader.value("PIN_PKCS11_SLOT") else {
                throw ConfigError(variable: "PIN_PKCS11_SLOT", problem: "is required with PIN_PKCS11_MODULE: a slot's number or the token's label")
            }
            guard let pin = reader.value("PIN_PKCS11_PIN", secret: true) else {
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
