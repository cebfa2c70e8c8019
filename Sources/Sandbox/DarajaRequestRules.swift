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
    public static let accountBalance = "/mpesa/accountbalance/v1/query"

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
        accountBalance: ["Initiator", "SecurityCredential", "CommandID", "PartyA", "IdentifierType", "Remarks", "QueueTimeOutURL", "ResultURL"],
    ]

    /// What a Transaction Status query names: a B2C by our OriginatorConversationID (PartyA the B2C
    /// shortcode), or a payment to the paybill by its receipt (PartyA the paybill).
    public static let statusSubjects: Set<String> = ["OriginalConversationID", "TransactionID"]

    /// What is wrong with a request to `path`; empty when Daraja would take it.
    public func problems(_ path: String, _ json: [String: JSONValue], now: Date = Date()) -> [String] {
        var request = Checked(json: json)
        var expected = Self.keys[path] ?? []
        if path == Self.transactionStatus {
            let named = Self.statusSubjects.intersection(json.keys)
            if named.count != 1 { request.problems.append("\(path): exactly one of \(Self.statusSubjects.sorted()) (got \(named.sorted()))") }
            expected.formUnion(named)
        }
        let extra = Set(json.keys).subtracting(expected)
        let missing = expected.subtracting(json.keys)
        if !extra.isEmpty { request.problems.append("\(path): extra keys \(extra.sorted())") }
        if !missing.isEmpty { request.problems.append("\(path): missing keys \(missing.sorted())") }
        if path == Self.stkPush || path == Self.stkQuery { self.checkSTKPassword(&request, now: now) }
        switch path {
        case Self.stkPush: self.checkSTKPush(&request)
        case Self.b2c: self.checkB2C(&request)
        case Self.transactionStatus: self.checkTransactionStatus(&request)
        case Self.registerC2B: self.checkRegisterC2B(&request)
        case Self.accountBalance: self.checkAccountBalance(&request)
        default: break
        }
        return request.problems
    }

    /// A request's fields, and what is wrong with them so far.
    struct Checked {
        let json: [String: JSONValue]
        var problems: [String] = []

        func text(_ key: String) -> String { self.json[key]?.string ?? "" }

        mutating func msisdn(_ key: String) {
            let value = self.text(key)
            if !(value.count == 12 && (value.hasPrefix("2547") || value.hasPrefix("2541")) && value.allSatisfy(\.isNumber)) {
                self.problems.append("\(key) \(value) is not 2547/2541 + 8 digits")
            }
        }

        mutating func url(_ key: String) {
            let value = self.text(key)
            if !(value.hasPrefix("https://") || value.hasPrefix("http://127.0.0.1:") || value.hasPrefix("http://localhost:")) {
                self.problems.append("\(key) is not an https URL")
            }
        }
    }

    /// STK push and query: the paybill, and the password of shortcode, passkey and a current timestamp.
    func checkSTKPassword(_ request: inout Checked, now: Date) {
        if request.text("BusinessShortCode") != self.shortcode { request.problems.append("BusinessShortCode") }
        let timestamp = request.text("Timestamp")
        if request.text("Password") != Data((self.shortcode + self.passkey + timestamp).utf8).base64EncodedString() {
            request.problems.append("Password is not base64(shortcode + passkey + Timestamp)")
        }
        // Nairobi time: within two minutes of now at UTC+3.
        if timestamp.count != 14 || Self.nairobi(timestamp).map({ abs($0.timeIntervalSince(now)) > 120 }) ?? true {
            request.problems.append("Timestamp \(timestamp) is not now in Nairobi time (yyyyMMddHHmmss)")
        }
    }

    func checkSTKPush(_ request: inout Checked) {
        if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(request.text("TransactionType")) { request.problems.append("TransactionType") }
        if case .integer(let amount) = request.json["Amount"] {
            if !(1...250_000).contains(amount) { request.problems.append("Amount out of range") }
        } else {
            request.problems.append("Amount is not whole shillings")
        }
        request.msisdn("PartyA")
        request.msisdn("PhoneNumber")
        if request.text("TransactionType") == "CustomerPayBillOnline" && request.text("PartyB") != self.shortcode {
            request.problems.append("PartyB is not the paybill")
        }
        request.url("CallBackURL")
        if !(1...12).contains(request.text("AccountReference").count) { request.problems.append("AccountReference over 12") }
        if !(1...13).contains(request.text("TransactionDesc").count) { request.problems.append("TransactionDesc over 13") }
    }

    func checkB2C(_ request: inout Checked) {
        if !["BusinessPayment", "SalaryPayment", "PromotionPayment"].contains(request.text("CommandID")) { request.problems.append("CommandID") }
        if let amount = Int(request.text("Amount")), (10...250_000).contains(amount) {} else { request.problems.append("B2C Amount") }
        if request.text("PartyA") != self.b2cShortcode { request.problems.append("PartyA is not the B2C shortcode") }
        request.msisdn("PartyB")
        if !(2...100).contains(request.text("Remarks").count) { request.problems.append("Remarks not 2-100") }
        if request.text("InitiatorName").isEmpty || request.text("SecurityCredential").isEmpty { request.problems.append("initiator") }
        if request.text("OriginatorConversationID").isEmpty { request.problems.append("OriginatorConversationID") }
        request.url("ResultURL")
        request.url("QueueTimeOutURL")
    }

    func checkTransactionStatus(_ request: inout Checked) {
        if request.text("CommandID") != "TransactionStatusQuery" { request.problems.append("CommandID") }
        if request.text("IdentifierType") != "4" { request.problems.append("IdentifierType") }
        if request.json["TransactionID"] != nil {
            if request.text("PartyA") != self.shortcode { request.problems.append("PartyA is not the paybill the receipt was paid to") }
            let receipt = request.text("TransactionID")
            if !((6...20).contains(receipt.count) && receipt.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) })) {
                request.problems.append("TransactionID")
            }
        } else if request.text("PartyA") != self.b2cShortcode {
            request.problems.append("PartyA is not the B2C shortcode")
        }
        if request.text("Initiator").isEmpty || request.text("SecurityCredential").isEmpty { request.problems.append("initiator") }
        if request.text("OriginatorConversationID").isEmpty { request.problems.append("OriginatorConversationID") }
        request.url("ResultURL")
        request.url("QueueTimeOutURL")
    }

    /// Account Balance of the B2C shortcode (an organisation: IdentifierType 4).
    func checkAccountBalance(_ request: inout Checked) {
        if request.text("CommandID") != "AccountBalance" { request.problems.append("CommandID") }
        if request.text("IdentifierType") != "4" { request.problems.append("IdentifierType") }
        if request.text("PartyA") != self.b2cShortcode { request.problems.append("PartyA is not the B2C shortcode") }
        if request.text("Initiator").isEmpty || request.text("SecurityCredential").isEmpty { request.problems.append("initiator") }
        if !(2...100).contains(request.text("Remarks").count) { request.problems.append("Remarks not 2-100") }
        request.url("ResultURL")
        request.url("QueueTimeOutURL")
    }

    func checkRegisterC2B(_ request: inout Checked) {
        if request.text("ShortCode") != self.shortcode { request.problems.append("ShortCode is not the paybill") }
        // Exact sentence case: Daraja refuses "completed".
        if !["Completed", "Cancelled"].contains(request.text("ResponseType")) { request.problems.append("ResponseType is not Completed or Cancelled") }
        for key in ["ConfirmationURL", "ValidationURL"] {
            request.url(key)
            let lowered = request.text(key).lowercased()
            for word in ["m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query"] where lowered.contains(word) {
                request.problems.append("\(key) contains \"\(word)\"")
            }
        }
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
