import Basics
import Foundation
import Logging
import Menus
import Postgres
import ServiceLifecycle
import Wallet

extension GatewayConfig {
    /// The settings written to the audit trail when they change between start-ups: what changes
    /// the money's rules or where it goes. Never a secret: tokens, keys, peppers and passwords are
    /// recorded only as set or not set.
    public func auditedSettings(menus: MenuDocument) -> [String: String] {
        func set(_ value: String?) -> String { value == nil ? "not set" : "set" }
        // Each part names its own audited settings; these are the process's and the callbacks'.
        var settings: [String: String] = [
            "environment": "\(self.environment)",
            "pin.keys": self.pinKeys?.summary ?? "not set",
            "callbacks.token": set(self.callbackToken ?? self.mpesaCallbackToken ?? self.africasTalkingCallbackToken ?? self.dialectCallbackToken),
            "callbacks.allowed_cidrs": self.callbackAllowedCIDRs.map { "\($0)" }.joined(separator: ","),
            "callbacks.trusted_proxies": self.trustedProxyCIDRs.map { "\($0)" }.joined(separator: ","),
            "public_base_url": self.publicBaseURL ?? "not set",
            // Whose numbers are served.
            "msisdn.countries": self.numberingPlan.countries.map(\.rawValue).joined(separator: ","),
            "currency": self.currency.code + (self.currency.fractions ? " with fractions" : " whole units"),
            "mobile_money": self.mobileMoney.rawValue,
            "sandbox.mpesa": String(self.sandbox.mpesa),
            "sandbox.sms": String(self.sandbox.sms),
            "menus.path": self.menusPath,
            "menus.version": String(menus.version),
            // Who may reach the staff desk, and how long a sign-in lasts.
            "desk": self.desk.enabled ? "on" : "off",
            "desk.tls": set(self.desk.tlsCertificateFile),
            "desk.idle_minutes": String(Int(self.desk.settings.idle.components.seconds / 60)),
            "desk.session_hours": String(Int(self.desk.settings.absolute.components.seconds / 3600)),
            "desk.lockout": "\(self.desk.settings.lockoutAttempts) tries, \(Int(self.desk.settings.lockout.components.seconds / 60)) minutes",
        ]
        for section in [self.wallet.audited, self.ussd.audited, self.sms.audited, self.mobileMoney == .mtnMoMo ? self.momo.audited : self.mpesa.audited] {
            settings.merge(section) { _, new in new }
        }
        if self.sandbox.isOn {
            // The sandbox's addresses name this process's own port, which changes from run to run.
            settings["public_base_url"] = "this gateway (sandbox)"
            if self.sandbox.mpesa { settings["mpesa.base_url"] = "this gateway (sandbox)" }
        }
        // Which backends the menus' http actions can reach: the URL (never a key) and whether
        // every variable the backend names is set.
        for (name, backend) in menus.backends ?? [:] {
            let references = [backend.url] + (backend.headers ?? [:]).values.sorted()
            let set = references.allSatisfy { reference in reference.hasPrefix("env:") && !(self.backendValues[String(reference.dropFirst(4))] ?? "").isEmpty }
            settings["backend.\(name)"] = self.sandbox.jobs && name == "jobs" ? "this gateway (sandbox)" : set ? "configured" : "not configured"
        }
        for (kind, bands) in menus.tariffs ?? [:] {
            settings["tariff.\(kind)"] = bands.map { "up to \($0.upTo): \($0.fee)" }.joined(separator: "; ")
        }
        return settings
    }

    /// The KYC tiers of `menus` in minor units of `currency`, and the default tier: the document's,
    /// or one `standard` tier with the ledger's per-transaction and daily limits and no balance cap
    /// when it declares none.
    public static func tiers(of menus: MenuDocument, in currency: Currency) -> (tiers: [KYCTier], defaultTier: String) {
        guard let section = menus.tiers else {
            let limits = WalletLimits()
            return ([KYCTier(name: "standard", perTransaction: limits.perTransaction.upperBound, daily: limits.daily, maxBalance: nil)], "standard")
        }
        let tiers = section.levels.sorted { $0.key < $1.key }.map { name, limits in
            KYCTier(
                name: name, perTransaction: currency.minor(whole: limits.perTransaction), daily: currency.minor(whole: limits.daily),
                maxBalance: limits.maxBalance.map(currency.minor(whole:))
            )
        }
        return (tiers, section.default)
    }
}

/// The gateway would serve with a login that can rewrite the schema: a superuser, or one that acts
/// as the schema's owner. Production refuses to start; development warns.
public struct UnsafeDatabaseLogin: Error, CustomStringConvertible {
    public let user: String
    public let why: String
    public var description: String {
        "DATABASE_URL logs in as \(user), \(why): serve with a login in ussd_app (the owner's login is for `migrate` only; see SECURITY.md)"
    }
}

/// Checks the login `serve` uses: in production a superuser or the schema's owner is refused
/// (``UnsafeDatabaseLogin``); in development it is logged as a warning, so tools that migrate a
/// throwaway database as its owner keep working.
public func checkDatabaseLogin(config: GatewayConfig, wallet: Wallet, logger: Logger) async throws {
    let identity = try await wallet.databaseIdentity()
    let why =
        identity.isSuperuser
        ? "a superuser" : identity.actsAsOwner
        ? "the schema's owner" : identity.canCreateRoles ? "a login that can create roles (and so grant itself any)" : identity.isApp ? nil : "a login outside ussd_app"
    guard let why else { return }
    if config.environment == .production && (identity.isSuperuser || identity.actsAsOwner || identity.canCreateRoles) {
        throw UnsafeDatabaseLogin(user: identity.user, why: why)
    }
    logger.warning(
        "serving with a database login that is \(why): production refuses a superuser or the owner; give the gateway a login in ussd_app",
        metadata: ["db_user": .string(identity.user)])
}

/// Brings the database in line with this start-up's configuration (the KYC tiers) and records the
/// configuration in the audit trail when it changed, after checking the login (``checkDatabaseLogin``).
/// `serve` refuses to start when this fails.
public func applyStartupConfiguration(config: GatewayConfig, menus: MenuDocument, wallet: Wallet, logger: Logger = Logger(label: "ussd.http")) async throws
    -> Bool
{
    try await checkDatabaseLogin(config: config, wallet: wallet, logger: logger)
    try await wallet.claimCurrency(config.currency)
    let (tiers, defaultTier) = GatewayConfig.tiers(of: menus, in: config.currency)
    return try await wallet.applyConfiguration(tiers: tiers, defaultTier: defaultTier, settings: config.auditedSettings(menus: menus))
}

/// Applies the start-up configuration once the database can be reached, when it could not be at
/// start: every `interval` until it is applied, so the tiers in force are the configuration's
/// within seconds of Postgres coming up, not at the next restart. A configuration the database
/// refuses by then (a tier customers hold) is logged at error; the gateway is already serving.
public struct StartupConfigurationRetry: Service {
    let config: GatewayConfig
    let menus: MenuDocument
    let interval: Duration
    let logger: Logger

    public init(config: GatewayConfig, menus: MenuDocument, interval: Duration = .seconds(5), logger: Logger) {
        self.config = config
        self.menus = menus
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let postgres = PostgresClient(configuration: self.config.postgres, logger: Logger(label: "postgres"))
        let wallet = Wallet(postgres: postgres, pins: PINVault(key: SoftwarePINKeys.randomKey()))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let changed = try await applyStartupConfiguration(config: self.config, menus: self.menus, wallet: wallet)
                self.logger.notice("configuration applied to the database", metadata: ["changed": .stringConvertible(changed)])
                break
            } catch let error as WalletError {
                self.logger.error("configuration refused by the database; tiers stay as last applied", metadata: ["error": "\(error)"])
                break
            } catch let error as LedgerCurrencyMismatch {
                // Amounts would be read in the wrong currency: the whole process stops.
                self.logger.critical("refusing to serve: \(error)")
                await postgres.shutdown()
                throw error
            } catch let error as UnsafeDatabaseLogin {
                // Production never serves as a login that can rewrite the schema: the whole process stops.
                self.logger.critical("refusing to serve: \(error)")
                await postgres.shutdown()
                throw error
            } catch {
                try? await Task.sleep(for: self.interval)
            }
        }
        await postgres.shutdown()
        // A service that returns ends the group: wait for the shutdown like the others.
        try? await gracefulShutdown()
    }
}

/// Why the PIN keys and the database disagree, or nil: a stored value under a key version these
/// keys lack (every customer under it would be refused), scrypt hashes from before PIN keys while
/// `PIN_PEPPER` is not set, or a version whose check value differs from the one recorded (another
/// host made a different key under the same number). Records the check values of versions new to
/// the database.
public func pinKeyProblem(config: GatewayConfig, wallet: Wallet) async throws -> String? {
    let versions = Set(wallet.pins.versions)
    for (scheme, version, customers) in try await wallet.pinKeyStatus() {
        if scheme == "pvv1", let version, !versions.contains(version) {
            return "PIN keys: \(customers) customer(s) have PIN values under key version \(version), which these keys do not hold (\(config.pinKeys?.summary ?? "none"))"
        }
        if scheme == "scrypt", config.pinPepper == nil {
            return "PIN_PEPPER: \(customers) customer(s) still have PIN hashes from before PIN keys; set PIN_PEPPER until `ussd-gateway pin key-status` counts none"
        }
    }
    if let version = try await wallet.checkPINKeys().first {
        return "PIN keys: version \(version) is not the key the database recorded for it (its check value differs): one host's keys must be copied to the others, not made on each"
    }
    return nil
}
