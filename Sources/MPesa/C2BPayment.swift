import Basics

/// A paybill payment (M-Pesa C2B) as Safaricom posts it to the validation and confirmation URLs
/// (`docs/reference/aggregators.md`, "M-Pesa C2B"):
/// `{"TransactionType", "TransID", "TransTime", "TransAmount", "BusinessShortCode", "BillRefNumber",
/// "InvoiceNumber", "OrgAccountBalance", "ThirdPartyTransID", "MSISDN", "FirstName", ...}`.
///
/// v2 masks `MSISDN` (`2547 ***** 126`), so the payer is found by `BillRefNumber`, the account the
/// payer typed (up to 20 characters). `TransAmount` is a string of shillings (`"10"`, `"10.00"`).
/// The names and the masked number are personal data: neither is kept here nor ever logged.
public struct C2BPayment: Sendable, Equatable {
    /// M-Pesa's receipt, the payment's identity (`RKTQDM7W6S`).
    public let transID: String
    public let cents: Int64
    public let shortcode: String
    /// As typed by the payer, trimmed; normalising it to a number is the caller's rule.
    public let billRef: String
    /// `ThirdPartyTransID`, echoed by Safaricom from our validation answer.
    public let thirdPartyTransID: String?

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(body: [UInt8]) throws(Malformed) {
        let json: JSONValue
        switch JSONValue.parseChecked(body) {
        case .success(let value): json = value
        case .failure(let failure): throw Malformed("body is not JSON within limits: \(failure.description)")
        }
        guard case .object = json else { throw Malformed("body is not a JSON object") }
        guard let id = Self.text(json["TransID"]), (6...20).contains(id.utf8.count), id.utf8.allSatisfy({ Self.isUpperAlphanumeric($0) }) else {
            throw Malformed("TransID missing or malformed")
        }
        guard let amount = Self.text(json["TransAmount"]), let cents = Self.cents(amount), cents > 0 else {
            throw Malformed("TransAmount missing or not a positive amount")
        }
        guard let shortcode = Self.text(json["BusinessShortCode"]), (5...7).contains(shortcode.count),
            shortcode.allSatisfy({ $0.isASCII && $0.isNumber })
        else {
            throw Malformed("BusinessShortCode missing or malformed")
        }
        let billRef = (Self.text(json["BillRefNumber"]) ?? "").trimmingCharacters(in: .whitespaces)
        guard billRef.utf8.count <= 40 else { throw Malformed("BillRefNumber longer than 40 bytes") }
        let third = Self.text(json["ThirdPartyTransID"]).flatMap { $0.isEmpty ? nil : $0 }
        if let third, third.utf8.count > 64 { throw Malformed("ThirdPartyTransID longer than 64 bytes") }
        (self.transID, self.cents, self.shortcode, self.billRef, self.thirdPartyTransID) = (id, cents, shortcode, billRef, third)
    }

    /// A string field; a number is taken as its digits (some senders drop the quotes).
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text): return text
        case .integer(let number): return String(number)
        case .decimal(let number) where number.isFinite && number >= 0 && number < 1e12: return String(format: "%.2f", number)
        default: return nil
        }
    }

    /// `"10"`, `"10.5"` or `"10.00"` as cents; nil for anything else or beyond a billion shillings.
    static func cents(_ text: String) -> Int64? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = parts.first, (1...10).contains(whole.count), whole.allSatisfy({ $0.isASCII && $0.isNumber }),
            let shillings = Int64(whole), shillings <= 1_000_000_000
        else { return nil }
        var cents = shillings * 100
        if parts.count == 2 {
            let fraction = parts[1]
            guard (1...2).contains(fraction.count), fraction.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(fraction) else {
                return nil
            }
            cents += fraction.count == 1 ? value * 10 : value
        }
        return cents
    }

    static func isUpperAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// What the validation URL answers: accept, or one of Safaricom's rejection codes.
public enum C2BValidationResult: String, Sendable {
    case accepted = "0"
    case invalidMSISDN = "C2B00011"
    case invalidAccount = "C2B00012"
    case invalidAmount = "C2B00013"
    case invalidKYC = "C2B00014"
    case invalidShortcode = "C2B00015"
    case otherError = "C2B00016"

    /// `{"ResultCode": "0", "ResultDesc": "Accepted"}` or `{"ResultCode": "C2B00012", "ResultDesc": "Rejected"}`.
    public func body(thirdPartyTransID: String? = nil) -> String {
        var members: [String: JSONValue] = ["ResultCode": .string(self.rawValue), "ResultDesc": .string(self == .accepted ? "Accepted" : "Rejected")]
        if let thirdPartyTransID { members["ThirdPartyTransID"] = .string(thirdPartyTransID) }
        return JSONValue.object(members).serialized
    }
}

/// What Daraja does with a payment when the validation URL does not answer in time.
public enum C2BResponseType: String, Sendable, CaseIterable {
    case completed = "Completed"
    case cancelled = "Cancelled"
}
