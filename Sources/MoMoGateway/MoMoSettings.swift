import Basics
import Foundation
import GatewayHTTP
import MoMo
import Settings

/// The `MOMO_*` settings (`MOBILE_MONEY=mtn-momo`). With any required one missing the gateway still
/// serves: deposits and withdrawals answer "temporarily unavailable" and `/readyz` says so.
public struct MoMoSettings: Sendable {
    /// `MOMO_BASE_URL`: MTN's sandbox by default; production hosts are per market.
    public var baseURL = MoMoConfiguration.sandboxURL
    /// `MOMO_TARGET_ENVIRONMENT`: `sandbox`, or the market (`mtnghana`, `mtnuganda`, ...).
    public var targetEnvironment = "sandbox"
    /// `MOMO_CURRENCY`: the currency sent to MoMo; the deployment's (`CURRENCY`) when unset. MTN's
    /// sandbox takes only EUR.
    public var currency: String?
    /// Collections (deposits) and Disbursements (withdrawals): each product's subscription key,
    /// API user and API key (`MOMO_COLLECTION_SUBSCRIPTION_KEY`, `MOMO_COLLECTION_API_USER`,
    /// `MOMO_COLLECTION_API_KEY`, and the same with `DISBURSEMENT`).
    public var collection: (subscriptionKey: String?, apiUser: String?, apiKey: String?) = (nil, nil, nil)
    public var disbursement: (subscriptionKey: String?, apiUser: String?, apiKey: String?) = (nil, nil, nil)
    /// `MOMO_ALLOWED_CIDRS`: source allowlist of the callback route; empty = `CALLBACK_ALLOWED_CIDRS`.
    public var allowedCIDRs: [CIDR] = []
    /// `MOMO_TIMEOUT_MS`: the longest a MoMo call may take before its outcome counts as unknown.
    public var requestTimeout = Duration.seconds(30)
    /// `MOMO_RECONCILE_INTERVAL_SECONDS`: how often the reconciler asks about what no callback settled.
    public var reconcileInterval = Duration.seconds(15)
    /// How long after the USSD reply the request to pay leaves (`STK_DELAY_MS`, shared with
    /// M-Pesa): the phone cannot show MoMo's prompt while the USSD session is still open.
    public var promptDelay = Duration.milliseconds(1500)

    public init() {}

    /// The variables a deployment on MoMo still lacks; empty when it can move money.
    public func missing(publicBaseURL: String?) -> [String] {
        var names: [String] = []
        for (product, credentials) in [("COLLECTION", self.collection), ("DISBURSEMENT", self.disbursement)] {
            if credentials.subscriptionKey == nil { names.append("MOMO_\(product)_SUBSCRIPTION_KEY") }
            if credentials.apiUser == nil { names.append("MOMO_\(product)_API_USER") }
            if credentials.apiKey == nil { names.append("MOMO_\(product)_API_KEY") }
        }
        if publicBaseURL == nil { names.append("PUBLIC_BASE_URL") }
        return names
    }

    /// The client's configuration in `currency` (the deployment's; `MOMO_CURRENCY` names what MoMo
    /// is told), its callbacks at `PUBLIC_BASE_URL/momo/callback[/token]/<reference>`; nil while
    /// anything is ``missing(publicBaseURL:)``.
    public func configuration(publicBaseURL: String?, callbackToken: String?, currency: Currency) -> MoMoConfiguration? {
        guard self.missing(publicBaseURL: publicBaseURL).isEmpty, let publicBaseURL,
            let collectionKey = self.collection.subscriptionKey, let collectionUser = self.collection.apiUser, let collectionSecret = self.collection.apiKey,
            let disbursementKey = self.disbursement.subscriptionKey, let disbursementUser = self.disbursement.apiUser,
            let disbursementSecret = self.disbursement.apiKey
        else { return nil }
        let base = publicBaseURL.hasSuffix("/") ? String(publicBaseURL.dropLast()) : publicBaseURL
        var configuration = MoMoConfiguration(
            baseURL: self.baseURL, targetEnvironment: self.targetEnvironment, currency: self.currency ?? currency.code, currencyDecimals: currency.minorUnits,
            collection: .init(subscriptionKey: collectionKey, apiUser: collectionUser, apiKey: collectionSecret),
            disbursement: .init(subscriptionKey: disbursementKey, apiUser: disbursementUser, apiKey: disbursementSecret),
            callbackURL: base + MoMoRoutes.callbackPath + (callbackToken.map { "/" + $0 } ?? "")
        )
        configuration.requestTimeout = self.requestTimeout
        return configuration
    }
}

extension MoMoSettings {
    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        self.baseURL = reader.string("MOMO_BASE_URL", default: self.baseURL)
        self.targetEnvironment = reader.string("MOMO_TARGET_ENVIRONMENT", default: self.targetEnvironment)
        guard self.targetEnvironment.count <= 40, self.targetEnvironment.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber) }) else {
            throw ConfigError(variable: "MOMO_TARGET_ENVIRONMENT", problem: "must be sandbox or a market such as mtnghana (lower-case letters and digits)")
        }
        if let code = reader.value("MOMO_CURRENCY") {
            guard Currency(code: code) != nil else { throw ConfigError(variable: "MOMO_CURRENCY", problem: "must be an ISO 4217 code such as EUR or GHS") }
            self.currency = code
        }
        self.collection = (
            reader.value("MOMO_COLLECTION_SUBSCRIPTION_KEY", secret: true), reader.value("MOMO_COLLECTION_API_USER"),
            reader.value("MOMO_COLLECTION_API_KEY", secret: true)
        )
        self.disbursement = (
            reader.value("MOMO_DISBURSEMENT_SUBSCRIPTION_KEY", secret: true), reader.value("MOMO_DISBURSEMENT_API_USER"),
            reader.value("MOMO_DISBURSEMENT_API_KEY", secret: true)
        )
        self.allowedCIDRs = try reader.list("MOMO_ALLOWED_CIDRS", problem: CIDR.refusal, CIDR.init)
        self.requestTimeout = try reader.milliseconds("MOMO_TIMEOUT_MS", default: self.requestTimeout, in: 100...55_000)
        self.reconcileInterval = try reader.seconds("MOMO_RECONCILE_INTERVAL_SECONDS", default: self.reconcileInterval, in: 1...3600)
        self.promptDelay = try reader.milliseconds("STK_DELAY_MS", default: self.promptDelay, in: 0...30_000)
    }

    /// Why these settings would move no real money, or move it in clear, in production: MTN's
    /// sandbox (its host or its target environment, which approves made-up payments), or MoMo
    /// over plain http (the API key and tokens in clear). Nil when they are a market's.
    public var productionProblem: ConfigError? {
        if self.targetEnvironment == "sandbox" {
            return ConfigError(variable: "MOMO_TARGET_ENVIRONMENT", problem: "is sandbox in production: set the market (mtnghana, mtnuganda, ...)")
        }
        guard let url = URLComponents(string: self.baseURL), url.scheme?.lowercased() == "https", let host = url.host?.lowercased(), !host.isEmpty else {
            return ConfigError(variable: "MOMO_BASE_URL", problem: "must be an https URL in production: MoMo's API key and tokens travel on it")
        }
        if host.contains("sandbox") {
            return ConfigError(variable: "MOMO_BASE_URL", problem: "is MTN's sandbox (\(host)) in production: set the market's host")
        }
        return nil
    }

    /// What the audit trail records of them (never a key).
    public var audited: [String: String] {
        [
            "momo.base_url": self.baseURL, "momo.target_environment": self.targetEnvironment, "momo.currency": self.currency ?? "the deployment's",
            "momo.credentials": self.missing(publicBaseURL: "-").isEmpty ? "set" : "not set",
            "momo.allowed_cidrs": self.allowedCIDRs.map { "\($0)" }.joined(separator: ","),
        ]
    }
}
