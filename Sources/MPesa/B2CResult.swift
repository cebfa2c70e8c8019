import Basics

/// The `Result` envelope Safaricom posts to a B2C (or transaction status) result or timeout URL.
public struct B2CResult: Sendable, Hashable {
    /// 0 to Int32.max; -1 when Safaricom sent a whole number outside that (see ``outOfRange``).
    public let resultCode: Int
    /// Which field of this well-formed result holds a value outside its range, if any: kept for
    /// review, never applied.
    public let outOfRange: String?
    public let resultDescription: String
    /// Ours: the payout's id, or a status query's id.
    public let originatorConversationID: String
    public let conversationID: String
    public let transactionID: String
    /// `ResultParameters.ResultParameter` as key -> value.
    public let parameters: [String: JSONValue]
    /// The body as the gateway keeps it (``JSONValue/serialized``).
    public let raw: String

    public init(json bytes: [UInt8]) throws(DarajaCallbackMalformed) {
        let json = try DarajaField.document(bytes)
        guard case .object? = json["Result"], let result = json["Result"] else { throw DarajaCallbackMalformed("no Result") }
        self.originatorConversationID = try DarajaField.token(result["OriginatorConversationID"], "OriginatorConversationID")
        let code = try DarajaField.resultCode(result["ResultCode"])
        self.resultCode = code ?? -1
        self.outOfRange = code == nil ? "ResultCode" : nil
        self.resultDescription = try DarajaField.text(result["ResultDesc"], "ResultDesc")
        self.conversationID = try DarajaField.optionalToken(result["ConversationID"], "ConversationID")
        self.transactionID = try DarajaField.optionalToken(result["TransactionID"], "TransactionID", maxLength: 64)
        self.parameters = try DarajaField.items(result["ResultParameters"]?["ResultParameter"], name: "Key", value: "Value", "ResultParameters")
        self.raw = json.serialized
        // Read now, so a malformed receipt or status is refused here rather than met later.
        _ = try self.receipt
        _ = try self.transactionStatus
    }

    /// Safaricom's receipt for the payment (`TransactionReceipt`, or `ReceiptNo` in a status answer),
    /// if the result carries one.
    public var receipt: String? {
        get throws(DarajaCallbackMalformed) {
            for key in ["TransactionReceipt", "ReceiptNo"] {
                if let value = self.parameters[key], value != .null { return try DarajaField.receipt(value, key) }
            }
            return nil
        }
    }

    /// A transaction-status answer's `TransactionStatus` (`Completed`, `Failed`, ...), lowercased.
    public var transactionStatus: String? {
        get throws(DarajaCallbackMalformed) {
            guard let value = self.parameters["TransactionStatus"], value != .null else { return nil }
            guard case .string(let text) = value, (1...32).contains(text.utf8.count), text.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic && $0.isASCII }) else {
                throw DarajaCallbackMalformed("TransactionStatus malformed")
            }
            return text.lowercased()
        }
    }
}
