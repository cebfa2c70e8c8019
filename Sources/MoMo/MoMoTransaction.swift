import Basics

/// A request to pay or a transfer as MoMo reports it: the status query's answer
/// (`RequestToPayResult`, `TransferResult`) and the callback, which carries the same object.
///
/// Decoded strictly and boundedly: known fields must have their documented shape; fields MoMo may
/// add later are ignored. A callback is unsigned: treat it as a hint and confirm by the status query.
public struct MoMoTransaction: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case pending = "PENDING"
        case successful = "SUCCESSFUL"
        case failed = "FAILED"
    }

    /// The customer: the payer of a request to pay, the payee of a transfer.
    public struct Party: Sendable, Hashable {
        public enum Role: String, Sendable, Hashable {
            case payer
            case payee
        }

        public let role: Role
        /// Always `MSISDN` here: other party types are refused as malformed.
        public let partyIdType: String
        /// Digits only.
        public let partyId: String
    }

    /// Why a transaction failed. The published schema has `ErrorReason {code, message}`; MTN's
    /// platform answers a bare code string (`"reason": "NOT_ENOUGH_FUNDS"`): both are read.
    public struct Reason: Sendable, Hashable {
        public let code: String
        public let message: String?
    }

    /// As MoMo wrote it (digits, optional decimals); see ``MoMoAmount/minorUnits(_:decimals:)``.
    public let amount: String
    public let currency: String
    public let financialTransactionId: String?
    public let externalId: String?
    public let party: Party
    public let status: Status
    public let reason: Reason?

    /// The largest callback body taken.
    public static let maximumBodyBytes = 8 * 1024
    static let limits: JSONValue.Limits = {
        var limits = JSONValue.Limits.callbacks
        (limits.depth, limits.stringBytes) = (4, 512)
        return limits
    }()

    /// A callback body MoMo posted (or put) to our `X-Callback-Url`: bounded to
    /// ``maximumBodyBytes``, then read as ``init(json:expecting:)`` reads a status answer.
    public static func decodeCallback(_ body: [UInt8]) throws(MoMoCallbackMalformed) -> MoMoTransaction {
        guard body.count <= Self.maximumBodyBytes else { throw MoMoCallbackMalformed("body larger than \(Self.maximumBodyBytes) bytes") }
        return try MoMoTransaction(json: body, expecting: nil)
    }

    /// A status answer or callback; `expecting` names the party it must carry (nil: either one).
    public init(json body: [UInt8], expecting role: Party.Role?) throws(MoMoCallbackMalformed) {
        let json: JSONValue
        switch JSONValue.parseChecked(body, limits: Self.limits) {
        case .success(let value): json = value
        case .failure(let failure): throw MoMoCallbackMalformed(failure.description)
        }
        guard case .object = json else { throw MoMoCallbackMalformed("body is not a JSON object") }
        guard let statusText = json["status"]?.stringValue, let status = Status(rawValue: statusText) else {
            throw MoMoCallbackMalformed("status is not PENDING, SUCCESSFUL or FAILED")
        }
        self.status = status
        guard let amount = json["amount"]?.numberText, MoMoAmount.minorUnits(amount, decimals: 6) != nil else {
            throw MoMoCallbackMalformed("amount is not digits with optional decimals")
        }
        self.amount = amount
        guard let currency = json["currency"]?.stringValue, currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw MoMoCallbackMalformed("currency is not an ISO 4217 code")
        }
        self.currency = currency
        self.financialTransactionId = try Self.optionalToken(json["financialTransactionId"], "financialTransactionId", maxLength: 64)
        self.externalId = try Self.optionalToken(json["externalId"], "externalId", maxLength: 128)
        self.party = try Self.party(json, expecting: role)
        self.reason = try Self.reason(json["reason"])
    }

    private static func party(_ json: JSONValue, expecting role: Party.Role?) throws(MoMoCallbackMalformed) -> Party {
        let roles: [Party.Role] = role.map { [$0] } ?? [.payer, .payee]
        let present = roles.filter { json[$0.rawValue] != nil }
        guard present.count == 1, let found = present.first, let party = json[found.rawValue], case .object = party else {
            throw MoMoCallbackMalformed(role.map { "no \($0.rawValue) object" } ?? "not exactly one of payer and payee")
        }
        guard party["partyIdType"]?.stringValue == "MSISDN" else { throw MoMoCallbackMalformed("\(found.rawValue).partyIdType is not MSISDN") }
        guard let id = party["partyId"]?.numberText, (5...15).contains(id.utf8.count), id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw MoMoCallbackMalformed("\(found.rawValue).partyId is not 5-15 digits")
        }
        return Party(role: found, partyIdType: "MSISDN", partyId: id)
    }

    private static func reason(_ value: JSONValue?) throws(MoMoCallbackMalformed) -> Reason? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            guard let code = Self.codeShaped(text) else { throw MoMoCallbackMalformed("reason is not an error code") }
            return Reason(code: code, message: nil)
        case .object?:
            guard let code = value?["code"]?.stringValue.flatMap(Self.codeShaped) else { throw MoMoCallbackMalformed("reason.code is not an error code") }
            let message = try Self.optionalToken(value?["message"], "reason.message", maxLength: 256, spaces: true)
            return Reason(code: code, message: message)
        default: throw MoMoCallbackMalformed("reason is neither a code nor {code, message}")
        }
    }

    /// A string (or a whole number, which MTN's samples show for ids) of printable ASCII.
    private static func optionalToken(_ value: JSONValue?, _ field: String, maxLength: Int, spaces: Bool = false) throws(MoMoCallbackMalformed) -> String? {
        switch value {
        case nil, .null?: return nil
        case let value?:
            guard let text = value.numberText ?? value.stringValue, text.utf8.count <= maxLength,
                text.utf8.allSatisfy({ ($0 > 0x20 || (spaces && $0 == 0x20)) && $0 < 0x7F })
            else { throw MoMoCallbackMalformed("\(field) is not printable text of at most \(maxLength) bytes") }
            return text
        }
    }
}

extension JSONValue {
    /// A JSON string, nothing else.
    fileprivate var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// A string, or a whole number written as its digits (MTN's own samples show amounts and ids
    /// as numbers although the schema says string); never a decimal read through `Double`.
    fileprivate var numberText: String? {
        switch self {
        case .string(let text): return text
        case .integer(let number) where number >= 0: return String(number)
        default: return nil
        }
    }
}

extension MoMoTransaction {
    /// `code` if it looks like MoMo's codes (`NOT_ENOUGH_FUNDS`, `401`), else nil: a reason, or an
    /// error body's code.
    static func codeShaped(_ code: String) -> String? {
        let allowed = code.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || ($0 >= 0x61 && $0 <= 0x7A) }
        return (1...64).contains(code.utf8.count) && allowed ? code : nil
    }
}
