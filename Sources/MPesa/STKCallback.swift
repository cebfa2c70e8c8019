import Basics

/// The body Safaricom posts to the STK callback URL, checked for shape.
public struct STKCallback: Sendable, Hashable {
    public let merchantRequestID: String
    public let checkoutRequestID: String
    /// 0 to Int32.max; -1 when Safaricom sent a whole number outside that (see ``outOfRange``).
    public let resultCode: Int
    public let resultDescription: String
    /// Only on success (`resultCode == 0`).
    public let paid: Paid?
    /// Which field of this well-formed callback holds a value outside its range, if any: such a
    /// callback is answered 200 and kept for review, never applied.
    public let outOfRange: String?
    /// The body as the gateway keeps it (``JSONValue/serialized``).
    public let raw: String

    /// The amounts an STK push can carry, in whole shillings (docs/reference/daraja.md).
    public static let shillingRange: ClosedRange<Int64> = 1...250_000

    public struct Paid: Sendable, Hashable {
        /// Whole shillings within ``STKCallback/shillingRange``; nil when Safaricom reported an amount
        /// outside it (or not whole): such a callback is kept for review, never credited.
        public let shillings: Int64?
        public let receipt: String
        /// Digits, as sent; the caller decides whether it is a number the deployment serves.
        public let phone: String
    }

    public typealias Malformed = DarajaCallbackMalformed

    public init(json bytes: [UInt8]) throws(DarajaCallbackMalformed) {
        let json = try DarajaField.document(bytes)
        guard case .object? = json["Body"]?["stkCallback"], let callback = json["Body"]?["stkCallback"] else {
            throw Malformed("no Body.stkCallback")
        }
        self.checkoutRequestID = try DarajaField.token(callback["CheckoutRequestID"], "CheckoutRequestID", maxLength: 64)
        self.merchantRequestID = try DarajaField.optionalToken(callback["MerchantRequestID"], "MerchantRequestID", maxLength: 64)
        let code = try DarajaField.resultCode(callback["ResultCode"])
        self.resultCode = code ?? -1
        self.outOfRange = code == nil ? "ResultCode" : nil
        self.resultDescription = try DarajaField.text(callback["ResultDesc"], "ResultDesc")
        self.raw = json.serialized
        guard self.resultCode == 0 else {
            self.paid = nil
            return
        }
        let items = try DarajaField.items(callback["CallbackMetadata"]?["Item"], name: "Name", value: "Value", "CallbackMetadata.Item")
        guard items["Amount"] != nil else { throw Malformed("a successful callback without Amount") }
        self.paid = Paid(
            shillings: try DarajaField.shillings(items["Amount"], in: Self.shillingRange),
            receipt: try DarajaField.receipt(items["MpesaReceiptNumber"], "MpesaReceiptNumber"),
            phone: try DarajaField.phone(items["PhoneNumber"])
        )
    }
}
