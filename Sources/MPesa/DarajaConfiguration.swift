import Foundation

/// Everything the Daraja client needs: where Daraja is, who we are and where callbacks go.
///
/// `CustomStringConvertible` names no secret: a configuration can be logged.
public struct DarajaConfiguration: Sendable, CustomStringConvertible {
    /// Paybill (`CustomerPayBillOnline`) or till (`CustomerBuyGoodsOnline`).
    public enum TransactionType: String, Sendable, CaseIterable {
        case paybill
        case till

        var commandID: String { self == .paybill ? "CustomerPayBillOnline" : "CustomerBuyGoodsOnline" }
    }

    /// The sandbox; live is `https://api.safaricom.co.ke`.
    public static let sandboxURL = "https://sandbox.safaricom.co.ke"

    public var baseURL: String
    public var consumerKey: String
    public var consumerSecret: String
    /// The paybill number, or a till's head-office number (BusinessShortCode).
    public var shortcode: String
    public var passkey: String
    public var transactionType: TransactionType
    /// PartyB of an STK push: the paybill itself, or the till number.
    public var partyB: String
    /// B2C: the paying shortcode (PartyA), the initiator and its encrypted password.
    public var b2cShortcode: String
    public var initiatorName: String
    public var securityCredential: String
    /// The paybill whose C2B payments the gateway takes (`MPESA_C2B_SHORTCODE`); ``shortcode`` when nil.
    public var c2bShortcode: String?
    /// The paybill's own initiator and its encrypted password, which ask Transaction Status about
    /// its payments (`MPESA_C2B_INITIATOR_NAME`, `MPESA_C2B_SECURITY_CREDENTIAL`); the B2C ones when nil.
    public var c2bInitiatorName: String?
    public var c2bSecurityCredential: String?
    /// Where Safaricom posts callbacks, e.g. `https://gw.example.com/mpesa/stk/callback/<token>`.
    public var stkCallbackURL: String
    public var b2cResultURL: String
    public var b2cTimeoutURL: String
    /// Where Account Balance answers (the float) and their queue timeouts are posted; nil leaves
    /// the float unwatched.
    public var balanceResultURL: String?
    public var balanceTimeoutURL: String?
    /// How long before expiry a token is refreshed.
    public var tokenRefreshMargin: Duration = .seconds(300)
    public var requestTimeout: Duration = .seconds(30)

    public init(
        baseURL: String = DarajaConfiguration.sandboxURL, consumerKey: String, consumerSecret: String, shortcode: String, passkey: String,
        transactionType: TransactionType = .paybill, partyB: String? = nil, b2cShortcode: String, initiatorName: String,
        securityCredential: String, stkCallbackURL: String, b2cResultURL: String, b2cTimeoutURL: String
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.consumerKey = consumerKey
        self.consumerSecret = consumerSecret
        self.shortcode = shortcode
        self.passkey = passkey
        self.transactionType = transactionType
        self.partyB = partyB ?? shortcode
        self.b2cShortcode = b2cShortcode
        self.initiatorName = initiatorName
        self.securityCredential = securityCredential
        self.stkCallbackURL = stkCallbackURL
        self.b2cResultURL = b2cResultURL
        self.b2cTimeoutURL = b2cTimeoutURL
    }

    /// The paybill of C2B payments: ``c2bShortcode``, else ``shortcode``.
    public var paybillShortcode: String { self.c2bShortcode ?? self.shortcode }
    /// The initiator that asks about paybill payments, and its credential.
    public var paybillInitiator: (name: String, credential: String) {
        (self.c2bInitiatorName ?? self.initiatorName, self.c2bSecurityCredential ?? self.securityCredential)
    }

    public var description: String {
        "Daraja(base: \(self.baseURL), shortcode: \(self.shortcode), type: \(self.transactionType.rawValue), b2c: \(self.b2cShortcode))"
    }
}
