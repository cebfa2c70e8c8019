import Foundation
import Settings
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
    /// How often the float (the B2C utility account) is asked for with Account Balance
    /// (`MPESA_FLOAT_CHECK_SECONDS`, default 900; 0 never asks): once per interval for the whole
    /// deployment, whichever replica is first.
    public var floatCheckInterval: Duration? = .seconds(900)
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
        configuration.balanceResultURL = base + "/mpesa/balance/result" + suffix
        configuration.balanceTimeoutURL = base + "/mpesa/balance/timeout" + suffix
        configuration.c2bShortcode = self.c2bShortcode
        configuration.c2bInitiatorName = self.c2bInitiatorName
        configuration.c2bSecurityCredential = self.c2bSecurityCredential
        return configuration
    }
}

extension MPesaSettings {
    /// The `MPESA_*` settings (and `STK_DELAY_MS`) from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        self.baseURL = try reader.string("MPESA_BASE_URL", default: self.baseURL)
        self.consumerKey = reader.value("MPESA_CONSUMER_KEY", secret: true)
        self.consumerSecret = reader.value("MPESA_CONSUMER_SECRET", secret: true)
        self.shortcode = reader.value("MPESA_SHORTCODE")
        self.passkey = reader.value("MPESA_PASSKEY", secret: true)
        self.transactionType = try reader.oneOf("MPESA_TRANSACTION_TYPE", default: self.transactionType)
        self.tillNumber = reader.value("MPESA_TILL_NUMBER")
        self.b2cShortcode = reader.value("MPESA_B2C_SHORTCODE")
        self.initiatorName = reader.value("MPESA_INITIATOR_NAME")
        self.securityCredential = reader.value("MPESA_SECURITY_CREDENTIAL", secret: true)
        self.c2bShortcode = reader.value("MPESA_C2B_SHORTCODE")
        self.c2bResponseType = try reader.oneOf("MPESA_C2B_RESPONSE_TYPE", default: self.c2bResponseType)
        self.c2bUnconfirmedAfter = .seconds(
            60 * (try reader.integer("MPESA_C2B_UNCONFIRMED_MINUTES", default: Int(self.c2bUnconfirmedAfter.components.seconds / 60), in: 1...10_080))
        )
        self.c2bInitiatorName = reader.value("MPESA_C2B_INITIATOR_NAME")
        self.c2bSecurityCredential = reader.value("MPESA_C2B_SECURITY_CREDENTIAL", secret: true)
        // M-Pesa's own per-transaction maximum is 250,000 shillings.
        self.c2bMaxAmount = Int64(try reader.integer("MPESA_C2B_MAX_AMOUNT", default: Int(self.c2bMaxAmount), in: 1...250_000))
        self.c2bReviewAfter = .seconds(
            60 * (try reader.integer("MPESA_C2B_REVIEW_AFTER_MINUTES", default: Int(self.c2bReviewAfter.components.seconds / 60), in: 5...10_080))
        )
        self.stkDelay = try reader.milliseconds("STK_DELAY_MS", default: self.stkDelay, in: 0...30_000)
        self.allowedCIDRs = try reader.list("MPESA_ALLOWED_CIDRS", problem: CIDR.refusal, CIDR.init)
        self.requestTimeout = try reader.milliseconds("MPESA_TIMEOUT_MS", default: self.requestTimeout, in: 100...55_000)
        self.reconcileInterval = try reader.seconds("MPESA_RECONCILE_INTERVAL_SECONDS", default: self.reconcileInterval, in: 1...3600)
        // At most an hour: the float-unknown alert expects a reading within three hours.
        let floatSeconds = try reader.integer("MPESA_FLOAT_CHECK_SECONDS", default: 900, in: 0...3600)
        self.floatCheckInterval = floatSeconds == 0 ? nil : .seconds(max(10, floatSeconds))
        self.payoutReviewAfterChecks = try reader.integer("MPESA_PAYOUT_REVIEW_AFTER_CHECKS", default: self.payoutReviewAfterChecks, in: 1...1000)
        self.payoutReviewAfter = .seconds(
            3600 * (try reader.integer("MPESA_PAYOUT_REVIEW_AFTER_HOURS", default: Int(self.payoutReviewAfter.components.seconds / 3600), in: 1...720))
        )
        }

    /// What the audit trail records of these settings when they change between start-ups: whose
    /// shortcodes and tills money goes through, and whether the secrets are set (never their values).
    public var audited: [String: String] {
        func set(_ value: String?) -> String { value == nil ? "not set" : "set" }
        return [
            "mpesa.base_url": self.baseURL,
            "mpesa.shortcode": self.shortcode ?? "not set",
            "mpesa.b2c_shortcode": self.b2cShortcode ?? "not set",
            // Whose paybill payments credit wallets, how much one may credit, and what Safaricom
            // does with a payment when the gateway cannot be asked.
            "mpesa.c2b_shortcode": self.c2bShortcode ?? "not set",
            "mpesa.c2b_max_amount": String(self.c2bMaxAmount),
            "mpesa.c2b_response_type": "\(self.c2bResponseType)",
            "mpesa.till_number": self.tillNumber ?? "not set",
            "mpesa.initiator_name": self.initiatorName ?? "not set",
            "mpesa.c2b_initiator_name": self.c2bInitiatorName ?? "not set",
            "mpesa.allowed_cidrs": self.allowedCIDRs.map { "\($0)" }.joined(separator: ","),
            "mpesa.transaction_type": "\(self.transactionType)",
            "mpesa.credentials": set(self.consumerSecret),
        ]
    }
}
