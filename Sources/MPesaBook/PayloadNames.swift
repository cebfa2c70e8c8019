import Basics
import Foundation
import Logging
import Postgres
import Wallet

/// Names inside M-Pesa's bodies (a paybill payer's `FirstName`, `MiddleName`, `LastName`; the
/// `DebitPartyName`, `CreditPartyName` and `ReceiverPartyPublicName` of Transaction Status and B2C
/// results) and the numbers beside them (a payer's `MSISDN` and the `BillRefNumber` they typed, an
/// STK callback's `PhoneNumber`) are never stored in clear (issue 31). Before a body is kept, each such value is
/// replaced by `sealed:v1:<subject>:<base64>`: the value sealed with the data key of the customer
/// the payment concerns when the name is theirs (a payout's receiver), else with the month's key (a
/// paybill payer may be anyone: their name goes with the month, never into the account owner's
/// export or kept past `RETENTION_UNKNOWN_SENDER_DAYS`), bound to the payment's
/// reference (its TransID, CheckoutRequestID, payout id or status query id) and the key's name. The
/// rest of the body (amounts, receipts, result codes) stays as it was, so everything that reads a
/// body reads it as before; an erasure makes the names unreadable with the customer's other fields.
extension MPesaBook {
    /// The keys whose values name a person, or are their number.
    static let nameKeys: Set<String> = [
        "FirstName", "MiddleName", "LastName", "DebitPartyName", "CreditPartyName", "ReceiverPartyPublicName", "MSISDN", "BillRefNumber", "PhoneNumber",
    ]

    /// What a kept body's payment is, to find whose key seals its names.
    public enum PayloadOwner: Sendable {
        /// A paybill payment, by TransID.
        case paybill(String)
        /// A deposit, by CheckoutRequestID.
        case deposit(String)
        /// A payout, by its id (our OriginatorConversationID).
        case payout(String)
        /// A number (a paybill's account before its row exists).
        case number(MSISDN?)
        /// The customer who holds this number (a payment their own phone made).
        case customerNumbered(MSISDN)
        /// Nobody known.
        case nobody

        /// The owner a review item's kind and reference name.
        static func review(kind: String, reference: String, depositID: Int64?, payoutID: String?) -> PayloadOwner {
            if let payoutID { return .payout(payoutID) }
            switch kind {
            case "c2b": return .paybill(reference)
            case "stk", "stk_query": return .deposit(reference)
            case "b2c_result", "b2c_timeout", "payout": return .payout(reference)
            default: return .nobody
            }
        }
    }

    /// `raw` with every name sealed for `owner`, bound to `reference`. A body that is not JSON, or
    /// names nobody, comes back as it was. Without personal-data keys a name is dropped rather than
    /// kept in clear.
    public func sealingNames(_ raw: String, reference: String, owner: PayloadOwner) async throws -> String {
        guard raw.contains("Name") || raw.contains("MSISDN"), let body = JSONValue.parse(Array(raw.utf8)), Self.namesSomeone(body) else { return raw }
        guard let personalData = self.wallet.personalData else { return Self.replacingNames(body) { _, _ in "[not kept]" }.serialized }
        var sealed: [String: String] = [:]
        do {
            let (subject, purpose) = try await self.subject(of: owner)
            for (key, value) in Self.names(in: body) where sealed[key + "\u{0}" + value] == nil {
                let box = try await personalData.seal(value, for: subject, purpose: purpose, at: Self.field(reference: reference, key: key))
                sealed[key + "\u{0}" + value] = SealedText(subject: subject, box: box).stored
            }
        } catch {
            // The key store cannot be reached: the payment's record is kept (money comes first) and
            // the names in it are not, rather than kept in clear.
            Logger(label: "mpesa").warning("names in an M-Pesa body not kept: the key store is unavailable", metadata: ["error": .string(safeDescription(of: error))])
            return Self.replacingNames(body) { _, _ in "[not kept]" }.serialized
        }
        return Self.replacingNames(body) { key, value in sealed[key + "\u{0}" + value] ?? "[not kept]" }.serialized
    }

    /// A sealed name as stored (`sealed:v1:...`) opened, for `reference` and `key`; nil once its
    /// subject was erased.
    public func openName(_ stored: String, reference: String, key: String) async throws -> String? {
        let field = Self.field(reference: reference, key: key)
        guard let sealed = SealedText(parsing: stored) else { throw PersonalDataError.malformed(field) }
        guard let personalData = self.wallet.personalData else { throw PersonalDataError.keys("this book has no personal-data keys") }
        return try await personalData.open(sealed.box, for: sealed.subject, at: field)
    }

    static func field(reference: String, key: String) -> PersonalField {
        .providerPayload(reference: reference, key: key)
    }

    /// The subject whose key seals a payment's names: its customer's (not erased), else the month's.
    func subject(of owner: PayloadOwner) async throws -> (UUID, PersonalData.Purpose) {
        let query: PostgresQuery?
        switch owner {
        // A paybill payer is whoever paid, not the account's customer: the month's key.
        case .paybill: query = nil
        case .deposit(let id): query = "SELECT c.subject::text FROM deposits d JOIN customers c ON c.id = d.customer_id WHERE d.checkout_request_id = \(id) AND c.erased_at IS NULL"
        case .payout(let id): query = "SELECT c.subject::text FROM payouts p JOIN customers c ON c.id = p.customer_id WHERE p.id = \(id) AND c.erased_at IS NULL"
        case .customerNumbered(let msisdn): query = "SELECT subject::text FROM customers WHERE msisdn = \(msisdn.value) AND erased_at IS NULL"
        case .number, .nobody: query = nil
        }
        if let query, let text = try await self.postgres.query(query).single()?.decode(String.self, column: 0), let subject = UUID(uuidString: text) {
            return (subject, .customer)
        }
        return (PersonalData.periodSubject(Date()), .period)
    }

    /// Every (key, value) pair that names someone: a name key's string value, or a `{"Key": ...,
    /// "Value": ...}` parameter of Daraja's result lists whose Key is one.
    static func names(in body: JSONValue) -> [(String, String)] {
        switch body {
        case .object(let members):
            if let (key, value) = Self.item(members) { return value.isEmpty || value.hasPrefix(SealedText.prefix) ? [] : [(key, value)] }
            return members.sorted { $0.key < $1.key }.flatMap { key, value -> [(String, String)] in
                if Self.nameKeys.contains(key), case .string(let text) = value { return text.isEmpty || text.hasPrefix(SealedText.prefix) ? [] : [(key, text)] }
                return Self.names(in: value)
            }
        case .array(let items): return items.flatMap(Self.names(in:))
        default: return []
        }
    }

    static func namesSomeone(_ body: JSONValue) -> Bool { !Self.names(in: body).isEmpty }

    /// A parameter of Daraja's lists that names someone: `{"Key": "ReceiverPartyPublicName", "Value":
    /// "..."}` in results, `{"Name": "PhoneNumber", "Value": 254708374149}` in an STK callback's
    /// metadata (a number, sealed as its digits).
    static func item(_ members: [String: JSONValue]) -> (String, String)? {
        guard case .string(let key)? = members["Key"] ?? members["Name"], Self.nameKeys.contains(key) else { return nil }
        switch members["Value"] {
        case .string(let value)?: return (key, value)
        case .integer(let value)?: return (key, String(value))
        default: return nil
        }
    }

    static func replacingNames(_ body: JSONValue, _ replacement: (String, String) -> String) -> JSONValue {
        switch body {
        case .object(var members):
            if let (key, value) = Self.item(members) {
                if !value.isEmpty && !value.hasPrefix(SealedText.prefix) { members["Value"] = .string(replacement(key, value)) }
                return .object(members)
            }
            for (key, value) in members {
                if Self.nameKeys.contains(key), case .string(let text) = value {
                    if !text.isEmpty && !text.hasPrefix(SealedText.prefix) { members[key] = .string(replacement(key, text)) }
                } else {
                    members[key] = Self.replacingNames(value, replacement)
                }
            }
            return .object(members)
        case .array(let items): return .array(items.map { Self.replacingNames($0, replacement) })
        default: return body
        }
    }
}
