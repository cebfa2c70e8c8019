import AfricasTalking
import Basics

/// One USSD hop as every dialect says it, once decoded (`docs/reference/aggregators.md`):
/// who sent it, the session, the number, what the user typed, and where the session stands.
///
/// Africa's Talking sends the whole input path on every hop. The others send only the latest
/// input, so for them the gateway keeps the path itself. `sequence` is the hop's number where the
/// dialect gives one (Hubtel). A repeated hop is then recognised by the same session and sequence,
/// or by the same latest input at the same step.
public struct CanonicalHop: Sendable, Hashable {
    public enum Provider: String, Sendable, CaseIterable {
        case africastalking, hubtel, nalo, arkesel, flares

        /// Whether the dialect marks a session's first hop. Flares does not: the gateway tells the
        /// first by the session, which it has not seen yet.
        public var marksFirstHop: Bool { self != .flares }
    }

    public enum Phase: String, Sendable {
        /// The first hop of a session: the dial.
        case begin
        case `continue`
        /// The network or the user ended the session; no reply is shown.
        case end
        /// The session timed out on the network; no reply is shown.
        case timeout
    }

    public let provider: Provider
    /// `[A-Za-z0-9_-]`, at most 64 characters: it lands in Redis keys and idempotency keys.
    public let sessionID: String
    /// The number as digits only, country code first (E.164 without `+`). Which countries the
    /// deployment serves is the caller's rule.
    public let phone: String
    /// The service code (`*384*96#`) where the dialect names it.
    public let serviceCode: String?
    /// The whole dial string on a first hop (`*713*1#`, or Flares' `71301`), for dial-in
    /// shortcuts; nil on later hops.
    public let dial: String?
    /// Every input of the session so far, `*`-joined, where the dialect sends it (Africa's
    /// Talking); nil where the gateway keeps the path. Holds PINs: never log or store it.
    public let path: String?
    /// What the user typed on this hop; empty on a first hop. Holds PINs: never log or store it.
    public let input: String
    public let phase: Phase
    /// The network or operator as the dialect names it (`63902`, `mtn`, `MTN`).
    public let network: String?
    /// The hop's number within the session, where the dialect gives one (Hubtel's `Sequence`).
    public let sequence: Int?

    public init(
        provider: Provider, sessionID: String, phone: String, serviceCode: String? = nil, dial: String? = nil, path: String? = nil,
        input: String, phase: Phase, network: String? = nil, sequence: Int? = nil
    ) {
        self.provider = provider
        self.sessionID = sessionID
        self.phone = phone
        self.serviceCode = serviceCode
        self.dial = dial
        self.path = path
        self.input = input
        self.phase = phase
        self.network = network
        self.sequence = sequence
    }
}

/// What the gateway answers a hop: a screen that waits for input, or one that ends the session.
public struct DialectReply: Sendable, Hashable {
    public let text: String
    public let ends: Bool

    public init(text: String, ends: Bool) {
        self.text = text
        self.ends = ends
    }

    /// From the engine's `CON ...` / `END ...`.
    public init(engine reply: String) {
        if reply.hasPrefix("END ") {
            self.init(text: String(reply.dropFirst(4)), ends: true)
        } else {
            self.init(text: reply.hasPrefix("CON ") ? String(reply.dropFirst(4)) : reply, ends: false)
        }
    }
}

/// A reply as one dialect puts it on the wire.
public struct RenderedReply: Sendable, Hashable {
    public let contentType: String
    public let headers: [String: String]
    public let body: String

    public init(contentType: String, headers: [String: String], body: String) {
        (self.contentType, self.headers, self.body) = (contentType, headers, body)
    }
}

/// The field checks the dialects share with Africa's Talking's decoder.
enum DialectField {
    /// The longest latest input or dial string taken (far beyond the 80 to 90 characters a network
    /// accepts on one screen).
    static let maximumInput = 512

    static func sessionID(_ value: String?, _ name: String) throws(MalformedCallback) -> String {
        guard let value, CallbackField.isIdentifier(value) else { throw MalformedCallback("\(name) missing or malformed") }
        return value
    }

    /// Digits only (`233241234567`), from a number with or without `+`.
    static func phone(_ value: String?, _ name: String) throws(MalformedCallback) -> String {
        guard let phone = CallbackField.phone(value) else { throw MalformedCallback("\(name) missing or malformed") }
        return String(phone.dropFirst())
    }

    static func input(_ value: String?, _ name: String, required: Bool = true) throws(MalformedCallback) -> String {
        guard let value else {
            if required { throw MalformedCallback("\(name) missing") }
            return ""
        }
        guard CallbackField.isCleanText(value, maxBytes: Self.maximumInput) else { throw MalformedCallback("\(name) too long or with control characters") }
        return value
    }

    static func token(_ value: String?, _ name: String, maxLength: Int = 32) throws(MalformedCallback) -> String? {
        guard let value, !value.isEmpty else { return nil }
        guard CallbackField.isPrintableToken(value, maxLength: maxLength) else { throw MalformedCallback("\(name) malformed") }
        return value
    }
}
