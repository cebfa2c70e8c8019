/// The body Safaricom posts to the STK callback URL, checked for shape.
public struct STKCallback: Sendable, Hashable {
    public let merchantRequestID: String
    public let checkoutRequestID: String
    public let resultCode: Int
    public let resultDescription: String
    /// Only on success (`resultCode == 0`).
    public let paid: Paid?

    public struct Paid: Sendable, Hashable {
        /// Whole shillings (the callback sends a decimal such as `1.00`).
        public let shillings: Int64
        public let receipt: String
        public let phone: String
    }

    /// Why a body is not an STK callback; the reason is safe to log.
    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(json bytes: [UInt8]) throws(Malformed) {
        guard let json = JSONValue.parse(bytes) else { throw Malformed(description: "body is not JSON") }
        guard let callback = json["Body"]?["stkCallback"] else { throw Malformed(description: "no Body.stkCallback") }
        guard let checkout = callback["CheckoutRequestID"]?.string, !checkout.isEmpty else {
            throw Malformed(description: "no CheckoutRequestID")
        }
        guard let code = callback["ResultCode"]?.integer, let small = Int(exactly: code) else { throw Malformed(description: "no numeric ResultCode") }
        self.merchantRequestID = callback["MerchantRequestID"]?.string ?? ""
        self.checkoutRequestID = checkout
        self.resultCode = small
        self.resultDescription = callback["ResultDesc"]?.string ?? ""
        guard small == 0 else {
            self.paid = nil
            return
        }
        var items: [String: JSONValue] = [:]
        for item in callback["CallbackMetadata"]?["Item"]?.array ?? [] {
            if let name = item["Name"]?.string, let value = item["Value"] { items[name] = value }
        }
        guard let amount = items["Amount"], let shillings = Self.wholeShillings(amount) else {
            throw Malformed(description: "a successful callback without a whole Amount")
        }
        guard let receipt = items["MpesaReceiptNumber"]?.string, !receipt.isEmpty else {
            throw Malformed(description: "a successful callback without MpesaReceiptNumber")
        }
        guard let phone = items["PhoneNumber"]?.integer else { throw Malformed(description: "a successful callback without PhoneNumber") }
        self.paid = Paid(shillings: shillings, receipt: receipt, phone: String(phone))
    }

    private static func wholeShillings(_ value: JSONValue) -> Int64? {
        switch value {
        case .integer(let number): return number
        case .decimal(let number): return number >= 0 && number.rounded() == number && number < 1e12 ? Int64(number) : nil
        case .string(let text): return Int64(text) ?? Double(text).flatMap { $0.rounded() == $0 && $0 < 1e12 ? Int64($0) : nil }
        default: return nil
        }
    }
}

/// The `Result` envelope Safaricom posts to a B2C (or transaction status) result or timeout URL.
public struct B2CResult: Sendable, Hashable {
    public let resultCode: Int
    public let resultDescription: String
    /// Ours: the payout's id, or a status query's id.
    public let originatorConversationID: String
    public let conversationID: String
    public let transactionID: String
    /// `ResultParameters.ResultParameter` as key -> value.
    public let parameters: [String: JSONValue]

    public init(json bytes: [UInt8]) throws(STKCallback.Malformed) {
        guard let json = JSONValue.parse(bytes) else { throw STKCallback.Malformed(description: "body is not JSON") }
        guard let result = json["Result"] else { throw STKCallback.Malformed(description: "no Result") }
        guard let originator = result["OriginatorConversationID"]?.string, !originator.isEmpty else {
            throw STKCallback.Malformed(description: "no OriginatorConversationID")
        }
        guard let code = result["ResultCode"]?.integer, let small = Int(exactly: code) else {
            throw STKCallback.Malformed(description: "no numeric ResultCode")
        }
        self.resultCode = small
        self.resultDescription = result["ResultDesc"]?.string ?? ""
        self.originatorConversationID = originator
        self.conversationID = result["ConversationID"]?.string ?? ""
        self.transactionID = result["TransactionID"]?.string ?? ""
        var parameters: [String: JSONValue] = [:]
        for item in result["ResultParameters"]?["ResultParameter"]?.array ?? [] {
            if let key = item["Key"]?.string, let value = item["Value"] { parameters[key] = value }
        }
        self.parameters = parameters
    }
}
