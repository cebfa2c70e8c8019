import Basics
import Foundation
import MPesa

/// Daraja's rules for the requests the gateway sends (docs/reference/daraja.md): exactly
/// the documented keys, the Password and Nairobi Timestamp, the MSISDN, amount and length limits.
/// The embedded sandbox refuses a request that breaks one, as Daraja would; the tests' strict fake
/// Daraja uses the same rules.
public struct DarajaRequestRules: Sendable {
    public static let stkPush = "/mpesa/stkpush/v1/processrequest"
    public static let stkQuery = "/mpesa/stkpushquery/v1/query"
    public static let b2c = "/mpesa/b2c/v3/paymentrequest"
    public static let transactionStatus = "/mpesa/transactionstatus/v1/query"
    public static let registerC2B = "/mpesa/c2b/v2/registerurl"

    public var shortcode: String
    public var passkey: String
    public var b2cShortcode: String

    public init(shortcode: String, passkey: String, b2cShortcode: String) {
        self.shortcode = shortcode
        self.passkey = passkey
        self.b2cShortcode = b2cShortcode
    }

    /// The keys each request must carry, and no others.
    public static let keys: [String: Set<String>] = [
        stkPush: [
            "BusinessShortCode", "Password", "Timestamp", "TransactionType", "Amount", "PartyA", "PartyB", "PhoneNumber", "CallBackURL",
            "AccountReference", "TransactionDesc",
        ],
        stkQuery: ["BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID"],
        b2c: [
            "OriginatorConversationID", "InitiatorName", "SecurityCredential", "CommandID", "Amount", "PartyA", "PartyB", "Remarks",
            "QueueTimeOutURL", "ResultURL", "Occasion",
        ],
        // And exactly one of ``statusSubjects``.
        transactionStatus: [
            "OriginatorConversationID", "Initiator", "SecurityCredential", "CommandID", "PartyA", "IdentifierType", "ResultURL", "QueueTimeOutURL",
            "Remarks", "Occasion",
        ],
        registerC2B: ["ShortCode", "ResponseType", "ConfirmationURL", "ValidationURL"],
    ]

    /// What a Transaction Status query names: a B2C by our OriginatorConversationID (PartyA the B2C
    /// shortcode), or a payment to the paybill by its receipt (PartyA the paybill).
    public static let statusSubjects: Set<String> = ["OriginalConversationID", "TransactionID"]

    /// What is wrong with a request to `path`; empty when Daraja would take it.
    public func problems(_ path: String, _ json: [String: JSONValue], now: Date = Date()) -> [String] {
        var problems: [String] = []
        var expected = Self.keys[path] ?? []
        if path == Self.transactionStatus {
            let named = Self.statusSubjects.intersection(json.keys)
            if named.count != 1 { problems.append("\(path): exactly one of \(Self.statusSubjects.sorted()) (got \(named.sorted()))") }
            expected.formUnion(named)
        }
        let extra = Set(json.keys).subtracting(expected)
        let missing = expected.subtracting(json.keys)
        if !extra.isEmpty { problems.append("\(path): extra keys \(extra.sorted())") }
        if !missing.isEmpty { problems.append("\(path): missing keys \(missing.sorted())") }
        func text(_ key: String) -> String { json[key]?.string ?? "" }
        func msisdn(_ key: String) {
            let value = text(key)
            if !(value.count == 12 && (value.hasPrefix("2547") || value.hasPrefix("2541")) && value.allSatisfy(\.isNumber)) {
                problems.append("\(key) \(value) is not 2547/2541 + 8 digits")
            }
        }
        func url(_ key: String) {
            let value = text(key)
            if !(value.hasPrefix("https://") || value.hasPrefix("http://127.0.0.1:") || value.hasPrefix("http://localhost:")) {
                problems.append("\(key) is not an https URL")
            }
        }
        if path == Self.stkPush || path == Self.stkQuery {
            if text("BusinessShortCode") != self.shortcode { problems.append("BusinessShortCode") }
            let timestamp = text("Timestamp")
            if text("Password") != Data((self.shortcode + self.passkey + timestamp).utf8).base64EncodedString() {
                problems.append("Password is not base64(shortcode + passkey + Timestamp)")
            }
            // Nairobi time: within two minutes of now at UTC+3.
            if timestamp.count != 14 || Self.nairobi(timestamp).map({ abs($0.timeIntervalSince(now)) > 120 }) ?? true {
                problems.append("Timestamp \(timestamp) is not now in Nairobi time (yyyyMMddHHmmss)")
            }
        }
        switch path {
        case Self.stkPush:
            if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(text("TransactionType")) { problems.append("TransactionType") }
            if case .integer(let amount) = json["Amount"] {
                if !(1...250_000).contains(amount) { problems.append("Amount out of range") }
            } else {
                problems.append("Amount is not whole shillings")
            }
            msisdn("PartyA")
            msisdn("PhoneNumber")
            if text("TransactionType") == "CustomerPayBillOnline" && text("PartyB") != self.shortcode { problems.append("PartyB is not the paybill") }
            url("CallBackURL")
            if !(1...12).contains(text("AccountReference").count) { problems.append("AccountReference over 12") }
            if !(1...13).contains(text("TransactionDesc").count) { problems.append("TransactionDesc over 13") }
        case Self.b2c:
            if !["BusinessPayment", "SalaryPayment", "PromotionPayment"].contains(text("CommandID")) { problems.append("CommandID") }
            if let amount = Int(text("Amount")), (10...250_000).contains(amount) {} else { problems.append("B2C Amount") }
            if text("PartyA") != self.b2cShortcode { problems.append("PartyA is not the B2C shortcode") }
            msisdn("PartyB")
            if !(2...100).contains(text("Remarks").count) { problems.append("Remarks not 2-100") }
            if text("InitiatorName").isEmpty || text("SecurityCredential").isEmpty { problems.append("initiator") }
            if text("OriginatorConversationID").isEmpty { problems.append("OriginatorConversationID") }
            url("ResultURL")
            url("QueueTimeOutURL")
        case Self.transactionStatus:
            if text("CommandID") != "TransactionStatusQuery" { problems.append("CommandID") }
            if text("IdentifierType") != "4" { problems.append("IdentifierType") }
            if json["TransactionID"] != nil {
                if text("PartyA") != self.shortcode { problems.append("PartyA is not the paybill the receipt was paid to") }
                let receipt = text("TransactionID")
                if !((6...20).contains(receipt.count) && receipt.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) })) { problems.append("TransactionID") }
            } else if text("PartyA") != self.b2cShortcode {
                problems.append("PartyA is not the B2C shortcode")
            }
            if text("Initiator").isEmpty || text("SecurityCredential").isEmpty { problems.append("initiator") }
            if text("OriginatorConversationID").isEmpty { problems.append("OriginatorConversationID") }
            url("ResultURL")
            url("QueueTimeOutURL")
        case Self.registerC2B:
            if text("ShortCode") != self.shortcode { problems.append("ShortCode is not the paybill") }
            // Exact sentence case: Daraja refuses "completed".
            if !["Completed", "Cancelled"].contains(text("ResponseType")) { problems.append("ResponseType is not Completed or Cancelled") }
            for key in ["ConfirmationURL", "ValidationURL"] {
                url(key)
                let lowered = text(key).lowercased()
                for word in ["m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query"] where lowered.contains(word) {
                    problems.append("\(key) contains \"\(word)\"")
                }
            }
        default:
            break
        }
        return problems
    }

    /// `yyyyMMddHHmmss` read as Nairobi time (UTC+3, no daylight saving).
    static func nairobi(_ timestamp: String) -> Date? {
        let digits = timestamp.utf8.map { Int($0) - 48 }
        guard digits.count == 14, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + $1 } }
        var components = DateComponents()
        components.year = number(0..<4)
        components.month = number(4..<6)
        components.day = number(6..<8)
        components.hour = number(8..<10)
        components.minute = number(10..<12)
        components.second = number(12..<14)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 3 * 3600)!
        return calendar.date(from: components)
    }
}
