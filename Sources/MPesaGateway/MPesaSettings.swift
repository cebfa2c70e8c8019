import Foundation
import GatewayActions
import GatewayHTTP
import MPesa
import Wallet

/// The `MPESA_*` settings as read from the environment. With any required one missing the
/// gateway still serves: deposits and withdrawals answer "temporarily unavailable" and
/// `/readyz` reports M-Pesa as not configured.
public struct MPesaSettings: Sendable {
    public var baseURL = DarajaConfiguration.sandboxURL
    public var consumerKey: String?
    public var consumerSecret: String?
    public var shortcode: String?
    public var passkey: String?
    public var transactionType = DarajaConfiguration.TransactionType.paybill
    /// PartyB for a till (`MPESA_TILL_NUMBER`); a paybill uses its shortcode.
    public var tillNumber: String?
    public var b2cShortcode: String?
    public var initiatorName: String?
    public var securityCredential: String?
    /// How long after the USSD reply the STK push leaves: the phone cannot show the prompt while
    /// the USSD session is still open.
    public var stkDelay = Duration.milliseconds(1500)
    /// Source allowlist for the M-Pesa callback routes (`MPESA_ALLOWED_CIDRS`); empty = the
    /// general `CALLBACK_ALLOWED_CIDRS` applies.
    public var allowedCIDRs: [CIDR] = []
    /// Longest a Daraja call may take before its outcome counts as unknown (`MPESA_TIMEOUT_MS`).
    public var requestTimeout = Duration.seconds(30)
    /// How often the reconciler looks for deposits and payouts to check.
    public var reconcileInterval = Duration.seconds(15)
    /// A payout still unsettled after this many checks (`MPESA_PAYOUT_REVIEW_AFTER_CHECKS`, default
    /// 12: about four hours of backing-off checks) or this age (`MPESA_PAYOUT_REVIEW_AFTER_HOURS`,
    /// default 24) goes to `needs_review`, its hold kept.
    public var payoutReviewAfterChecks = 12
    public var payoutReviewAfter = Duration.seconds(24 * 3600)
    /// The paybill customers pay with their number as the account (`MPESA_C2B_SHORTCODE`); the
    /// STK shortcode when not set.
    public var c2bShortcode: String?
    /// What Daraja does with a payment when the validation URL does not answer in time
    /// (`MPESA_C2B_RESPONSE_TYPE`, `Completed` or `Cancelled`; default `Completed`: the payment goes
    /// through and its confirmation is credited, or kept for review when its account names nobody).
    public var c2bResponseType = C2BResponseType.completed
    /// An accepted validation still without its confirmation after this long is reported for
    /// review (`MPESA_C2B_UNCONFIRMED_MINUTES`, default 10).
    public var c2bUnconfirmedAfter = Duration.seconds(600)
    /// The paybill's own initiator and its encrypted password, which ask Transaction Status about
    /// paybill payments (`MPESA_C2B_INITIATOR_NAME`, `MPESA_C2B_SECURITY_CREDENTIAL`); the B2C
    /// initiator's when unset.
    public var c2bInitiatorName: String?
    public var c2bSecurityCredential: String?
    /// The most one paybill payment may credit to a wallet (`MPESA_C2B_MAX_AMOUNT`, whole shillings,
    /// default 150,000; M-Pesa's own per-transaction maximum is 250,000). A confirmed payment above
    /// it, or above the customer's KYC tier, goes to the suspense account and to review.
    public var c2bMaxAmount: Int64 = 150_000
    /// A paybill confirmation Safaricom's Transaction Status has not confirmed after this long is
    /// kept for review and no longer asked about (`MPESA_C2B_REVIEW_AFTER_MINUTES`, default 60).
    public var c2bReviewAfter = Duration.seconds(3600)

    public init() {}

    /// The paybill whose C2B payments the gateway takes, when one is configured.
    public var paybillShortcode: String? { self.c2bShortcode ?? self.shortcode }

    /// How paybill confirmations are verified and where confirmed payments may go.
    public var paybillRules: MPesaService.PaybillRules {
        MPesaService.PaybillRules(maxAmount: Amount(shillings: self.c2bMaxAmount) ?? .shillings(250_000), reviewAfter: self.c2bReviewAfter)
    }

    /// The confirmation and validation URLs to register (`/paybill/confirm`, `/paybill/validate`,
    /// with the callback token as the last segment when one is set): free of the words Safaricom
    /// refuses in registered URLs, which is why they are not under `/mpesa/`.
    public static func paybillURLs(publicBaseURL: String, callbackToken: String?) -> (confirmation: String, validation: String) {
        let base = publicBaseURL.hasSuffix("/") ? String(publicBaseURL.dropLast()) : publicBaseURL
        let suffix = callbackToken.map { "/" + $0 } ?? ""
        return (base + "/paybill/confirm" + suffix, base + "/paybill/validate" + suffix)
    }

    /// The names of the settings still missing for a working M-Pesa, given `publicBaseURL`.
    public func missing(publicBaseURL: String?) -> [String] {
        var names: [String] = []
        if self.consumerKey == nil { names.append("MPESA_CONSUMER_KEY") }
        if self.consumerSecret == nil { names.append("MPESA_CONSUMER_SECRET") }
        if self.shortcode == nil { names.append("MPESA_SHORTCODE") }
        if self.passkey == nil { names.append("MPESA_PASSKEY") }
        if self.b2cShortcode == nil { names.append("MPESA_B2C_SHORTCODE") }
        if self.initiatorName == nil { names.append("MPESA_INITIATOR_NAME") }
        if self.securityCredential == nil { names.append("MPESA_SECURITY_CREDENTIAL") }
        if self.transactionType == .till && self.tillNumber == nil { names.append("MPESA_TILL_NUMBER") }
        if publicBaseURL == nil { names.append("PUBLIC_BASE_URL") }
        return names
    }

    /// The Daraja client's configuration, callback URLs built from `publicBaseURL` (with the
    /// callback token as the last segment when one is set); nil while anything is missing.
    public func daraja(publicBaseURL: String?, callbackToken: String?) -> DarajaConfiguration? {
        guard self.missing(publicBaseURL: publicBaseURL).isEmpty, let publicBaseURL, let consumerKey, let consumerSecret, let shortcode,
            let passkey, let b2cShortcode, let initiatorName, let securityCredential
        else { return nil }
        let base = publicBaseURL.hasSuffix("/") ? String(publicBaseURL.dropLast()) : publicBaseURL
        let suffix = callbackToken.map { "/" + $0 } ?? ""
        var configuration = DarajaConfiguration(
            baseURL: self.baseURL, consumerKey: consumerKey, consumerSecret: consumerSecret, shortcode: shortcode, passkey: passkey,
            transactionType: self.transactionType, partyB: self.transactionType == .till ? self.tillNumber : shortcode,
            b2cShortcode: b2cShortcode, initiatorName: initiatorName, securityCredential: securityCredential,
            stkCallbackURL: base + "/mpesa/stk/callback" + suffix, b2cResultURL: base + "/mpesa/b2c/result" + suffix,
            b2cTimeoutURL: base + "/mpesa/b2c/timeout" + suffix
        )
        configuration.requestTimeout = self.requestTimeout
        configuration.c2bShortcode = self.c2bShortcode
        configuration.c2bInitiatorName = self.c2bInitiatorName
        configuration.c2bSecurityCredential = self.c2bSecurityCredential
        return configuration
    }
}
