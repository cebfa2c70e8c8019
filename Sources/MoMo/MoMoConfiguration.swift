import Foundation

/// Everything the MoMo client needs: where MTN's Open API is, which market, and the credentials
/// of the two products the gateway uses (Collections for deposits, Disbursements for withdrawals).
///
/// `CustomStringConvertible` names no secret: a configuration can be logged.
public struct MoMoConfiguration: Sendable, CustomStringConvertible {
    /// One product's credentials: its subscription key (`Ocp-Apim-Subscription-Key`) and the API
    /// user and key that buy its access tokens. Each product has its own.
    public struct Credentials: Sendable, CustomStringConvertible {
        public var subscriptionKey: String
        /// A UUID, issued by MTN (created with `POST /v1_0/apiuser` in the sandbox).
        public var apiUser: String
        public var apiKey: String

        public init(subscriptionKey: String, apiUser: String, apiKey: String) {
            self.subscriptionKey = subscriptionKey
            self.apiUser = apiUser
            self.apiKey = apiKey
        }

        public var description: String { "MoMo credentials (redacted)" }
    }

    /// MTN's sandbox; production hosts are per market (e.g. `https://proxy.momoapi.mtn.com`).
    public static let sandboxURL = "https://sandbox.momodeveloper.mtn.com"

    public var baseURL: String
    /// `X-Target-Environment`: `sandbox`, or the market (`mtnghana`, `mtnuganda`, ...).
    public var targetEnvironment: String
    /// ISO 4217 code of every amount; the sandbox accepts only `EUR`.
    public var currency: String
    /// Digits after the decimal point an amount in ``currency`` may carry (2 for EUR and GHS, 0 for
    /// UGX, RWF and XAF); amounts with more are refused before they leave.
    public var currencyDecimals: Int
    public var collection: Credentials
    public var disbursement: Credentials
    /// Where MTN should send results, e.g. `https://gw.example.com/momo/callback/<token>`: each
    /// create call appends `/<referenceId>` and sends it as `X-Callback-Url`. Nil sends none (the
    /// gateway then learns outcomes by the status queries only).
    public var callbackURL: String?
    /// How long before expiry a token is refreshed.
    public var tokenRefreshMargin: Duration = .seconds(300)
    public var requestTimeout: Duration = .seconds(30)

    public init(
        baseURL: String = MoMoConfiguration.sandboxURL, targetEnvironment: String = "sandbox", currency: String = "EUR", currencyDecimals: Int = 2,
        collection: Credentials, disbursement: Credentials, callbackURL: String? = nil
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.targetEnvironment = targetEnvironment
        self.currency = currency
        self.currencyDecimals = currencyDecimals
        self.collection = collection
        self.disbursement = disbursement
        self.callbackURL = callbackURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// The callback URL names the host, never the path: its last segment is a secret token.
    public var description: String {
        let callbackHost = self.callbackURL.flatMap { URLComponents(string: $0)?.host } ?? "none"
        return "MoMo(base: \(self.baseURL), environment: \(self.targetEnvironment), currency: \(self.currency), callbacks to: \(callbackHost))"
    }

    /// The secrets of both products, for scrubbing text that came back from MTN.
    var secrets: [String] {
        [self.collection.subscriptionKey, self.collection.apiKey, self.disbursement.subscriptionKey, self.disbursement.apiKey].filter { !$0.isEmpty }
    }
}
