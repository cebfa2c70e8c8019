import Basics

/// The `Result` envelope Safaricom posts to a B2C (or transaction status) result or timeout URL.
public struct B2CResult: Sendable, Hashable {
    /// 0 to Int32.max; -1 when Safaricom sent a whole number outside that, or a code spelt as a
    /// name (see ``outOfRange`` and ``resultCodeName``).
    public let resultCode: Int
    /// A result code Safaricom spelt as a name rather than a number (`SFC_IC0003` in a transaction
    /// status answer): never a success.
    public let resultCodeName: String?
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
        if let name = DarajaField.namedResultCode(result["ResultCode"]) {
            (self.resultCode, self.resultCodeName, self.outOfRange) = (-1, name, "ResultCode")
        } else {
            let code = try DarajaField.resultCode(result["ResultCode"])
            (self.resultCode, self.resultCodeName, self.outOfRange) = (code ?? -1, nil, code == nil ? "ResultCode" : nil)
        }
        self.resultDescription = try DarajaField.text(result["ResultDesc"], "ResultDesc")
        self.conversationID = try DarajaField.optionalToken(result["ConversationID"], "ConversationID")
        self.transactionID = try DarajaField.optionalToken(result["TransactionID"], "TransactionID", maxLength: 64)
        self.parameters = try DarajaField.items(result["ResultParameters"]?["ResultParameter"], name: "Key", value: "Value", "ResultParameters")
        self.raw = json.serialized
        // Read now, so a malformed receipt or status is refused here rather than met later.
        _ = try self.receipt
        _ = try self.transactionStatus
    }

    /// Whether the result says the request succeeded: ResultCode 0, nothing out of range.
    public var succeeded: Bool { self.resultCode == 0 && self.outOfRange == nil }

    /// The result code as a person reads it: the number, or the name Safaricom used.
    public var resultCodeText: String { self.resultCodeName ?? String(self.resultCode) }

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

    /// A transaction-status answer's `TransactionStatus` (`Completed`, `Failed`, `Pending Authorized`,
    /// ...), lowercased.
    public var transactionStatus: String? {
        get throws(DarajaCallbackMalformed) {
            guard let value = self.parameters["TransactionStatus"], value != .null else { return nil }
            // Letters and spaces (`Completed`, `Pending Authorized`).
            guard case .string(let text) = value, (1...32).contains(text.utf8.count),
                text.unicodeScalars.allSatisfy({ ($0.properties.isAlphabetic && $0.isASCII) || $0 == " " }), text.unicodeScalars.contains(where: { $0 != " " })
            else {
                throw DarajaCallbackMalformed("TransactionStatus malformed")
            }
            return text.lowercased()
        }
    }
}

/// What a Transaction Status answer (a ``B2CResult`` posted to the result URL under a status
/// query's id) says about the transaction asked about: its status, receipt, amount and parties
/// (`ResultParameters`: `TransactionStatus`, `ReceiptNo`, `Amount`, `CreditPartyName`,
/// `DebitPartyName`; docs/reference/daraja.md). Every field is optional: the caller decides
/// whether an answer that lacks one confirms anything (it does not).
public struct TransactionStatusAnswer: Sendable, Hashable {
    /// `completed`, `failed`, `cancelled`, `expired`, `declined`, `pending`, ... (lowercased).
    public let status: String?
    /// `ReceiptNo` (or `TransactionReceipt`).
    public let receipt: String?
    /// `Amount` in cents; nil when absent, or not an exact amount from one cent to a billion shillings.
    public let cents: Int64?
    /// The organisation or phone `CreditPartyName` starts with (`174379 - Wallet Ltd` -> `174379`).
    public let creditParty: String?
    /// The same of `DebitPartyName`.
    public let debitParty: String?

    /// Reads the answer's parameters; malformed when a field has the wrong type or shape.
    public init(_ result: B2CResult) throws(DarajaCallbackMalformed) {
        self.status = try result.transactionStatus
        self.receipt = try result.receipt
        self.cents = try DarajaField.cents(result.parameters["Amount"], "Amount")
        self.creditParty = try DarajaField.party(result.parameters["CreditPartyName"], "CreditPartyName")
        self.debitParty = try DarajaField.party(result.parameters["DebitPartyName"], "DebitPartyName")
    }

    /// The final statuses that mean the money did not move (Daraja's "Cancelled, Declined, Expired",
    /// and "Failed").
    public static let notPaid: Set<String> = ["failed", "cancelled", "expired", "declined"]
}
