import Basics
import Foundation

/// Where a sealed personal value sits: its table, its column and its row's own key. The three are
/// the ciphertext's associated data, with the subject whose key sealed it: a value copied to
/// another row, another column or another customer fails to open (``PersonalDataError/doesNotOpen(_:)``)
/// and never reads as someone else's data.
public struct PersonalField: Sendable, Hashable, CustomStringConvertible {
    public let table: String
    public let column: String
    /// The row's key as the table knows it (a customer's subject, an SMS's id, an outbox row's
    /// de-duplication key): never personal data itself, since it is printed in errors.
    public let row: String

    public init(_ table: String, _ column: String, row: String) {
        self.table = table
        self.column = column
        self.row = row
    }

    public var description: String { "\(self.table).\(self.column) of row \(self.row)" }

    func associatedData(subject: UUID) -> Data {
        Data("ussd-gateway/personal/v1|\(self.table).\(self.column)|\(self.row)|\(subject.uuidString.lowercased())".utf8)
    }

    /// A customer's name (`customers.name_sealed`), bound to their subject.
    public static func customerName(_ subject: UUID) -> PersonalField {
        PersonalField("customers", "name_sealed", row: subject.uuidString.lowercased())
    }

    /// An inbound SMS's text, PIN masked (`sms_inbound.text_sealed`), bound to its message id.
    public static func inboundText(_ messageID: String) -> PersonalField {
        PersonalField("sms_inbound", "text_sealed", row: messageID)
    }

    /// An outbound SMS's worded text (`outbox.message_sealed`), bound to its de-duplication key.
    public static func outboxMessage(_ dedupeKey: String) -> PersonalField {
        PersonalField("outbox", "message_sealed", row: dedupeKey)
    }

    /// A name or number inside a provider's body (its `key`), bound to the payment's reference.
    public static func providerPayload(reference: String, key: String) -> PersonalField {
        PersonalField("provider_payload", key, row: reference)
    }
}

/// A value sealed inside a JSON body kept as it came (a provider's): `sealed:v1:<subject>:<base64>`,
/// so the body stays JSON and everything else in it reads as before.
public struct SealedText: Sendable, Hashable {
    public static let prefix = "sealed:v1:"
    public let subject: UUID
    public let box: Data

    public init(subject: UUID, box: Data) {
        (self.subject, self.box) = (subject, box)
    }

    /// `stored` read back; nil when it is not of this form.
    public init?(parsing stored: String) {
        guard stored.hasPrefix(Self.prefix) else { return nil }
        let parts = stored.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let subject = UUID(uuidString: String(parts[0])), let box = Data(base64Encoded: String(parts[1])) else { return nil }
        (self.subject, self.box) = (subject, box)
    }

    public var stored: String { Self.prefix + self.subject.uuidString.lowercased() + ":" + self.box.base64EncodedString() }
}

/// Why personal data could not be sealed or opened. Never holds the data or a key.
public enum PersonalDataError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The value does not open under its subject's key with its place as associated data: it was
    /// moved from another row, column or customer, or altered.
    case doesNotOpen(PersonalField)
    /// Not a sealed value of a format this gateway writes.
    case malformed(PersonalField)
    /// The subject's key was destroyed (erased): nothing new is sealed for them.
    case destroyed(UUID)
    /// The key store has no key for the subject and no record of destroying one: a key store
    /// restored from the wrong backup, or data from another deployment.
    case missingKey(UUID)
    /// The key store, or the key-encryption keys, could not be used.
    case keys(String)

    public var description: String {
        switch self {
        case .doesNotOpen(let field):
            return "the sealed value in \(field) does not open under its subject's key: it was written for another row, column or customer, or altered"
        case .malformed(let field): return "the value in \(field) is not a sealed value this gateway writes"
        case .destroyed(let subject): return "the data key of subject \(subject.uuidString.lowercased()) was destroyed (erased): nothing is sealed for it"
        case .missingKey(let subject):
            return "the key store holds no data key for subject \(subject.uuidString.lowercased()) and no record of destroying one (is PERSONAL_DATA_KEYS_URL the right key store?)"
        case .keys(let reason): return reason
        }
    }
}

// Its words name fields, rows, subjects' pseudonymous ids and key versions: never a value.
extension PersonalDataError: LogSafeError {}
