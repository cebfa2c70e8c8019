/// Africa's Talking's callbacks, decoded and checked at the edge: every field the gateway reads is
/// bounded in length, limited to the characters it can hold, and free of control characters, so no
/// value a caller made up reaches Redis, Postgres, a log or a metric label. Foundation-free and
/// pure, so the decoders can be fuzzed on their own (`make fuzz`).
///
/// Phone numbers are checked for shape only here (an optional `+`, then digits); which numbers the
/// deployment serves is the caller's rule (`MSISDN(parsing:)`).

/// Why a callback cannot be used. The reason names the field, never its value: values can hold PINs.
public struct MalformedCallback: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `application/x-www-form-urlencoded`, as Africa's Talking posts it.
public enum FormFields {
    /// The fields of a form body: `+` is a space, `%XX` a byte, a repeated field keeps its first
    /// value, a field without `=` is empty. A bad escape or invalid UTF-8 is malformed.
    public static func parse(_ bytes: some Collection<UInt8>) throws(MalformedCallback) -> [String: String] {
        var fields: [String: String] = [:]
        let bytes = Array(bytes)
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let name = try Self.unescape(bytes[start..<equals])
                let value = equals < end ? try Self.unescape(bytes[(equals + 1)..<end]) : ""
                if fields[name] == nil { fields[name] = value }
            }
            start = end + 1
        }
        return fields
    }

    private static func unescape(_ bytes: ArraySlice<UInt8>) throws(MalformedCallback) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                output.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = Self.hex(bytes[index + 1]), let low = Self.hex(bytes[index + 2]) else {
                    throw MalformedCallback("body is not a urlencoded form")
                }
                output.append(high << 4 | low)
                index += 2
            } else {
                output.append(byte)
            }
            index += 1
        }
        guard let text = String(validating: output, as: UTF8.self) else { throw MalformedCallback("body is not UTF-8") }
        return text
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// The checks every Africa's Talking field goes through.
public enum CallbackField {
    /// An id that lands in Redis keys, database keys and idempotency keys: `[A-Za-z0-9_-]{1,max}`.
    /// No `:` can appear, so no caller can build a key of another namespace (`sms:`, `deposit:`).
    public static func isIdentifier(_ value: String, maxLength: Int = 64) -> Bool {
        (1...maxLength).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
    }

    /// A phone number's shape: an optional `+` (which an unencoded form turns into a space), then 7
    /// to 15 digits, at most 20 characters with the spaces around it.
    public static func phone(_ value: String?) -> String? {
        guard let value, value.utf8.count <= 20 else { return nil }
        var digits = Substring(value).drop { $0 == " " }
        while digits.last == " " { digits.removeLast() }
        if digits.first == "+" { digits.removeFirst() }
        guard (7...15).contains(digits.utf8.count), digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return "+" + digits
    }

    /// Text with no control character (C0, DEL, C1) except those in `allowing`, of at most
    /// `maxBytes` UTF-8 bytes.
    public static func isCleanText(_ value: String, maxBytes: Int, allowing: Set<Unicode.Scalar> = []) -> Bool {
        value.utf8.count <= maxBytes
            && value.unicodeScalars.allSatisfy { scalar in
                allowing.contains(scalar) || !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value))
            }
    }

    /// Printable ASCII without spaces, 1 to `maxLength` characters (service codes, network codes).
    public static func isPrintableToken(_ value: String, maxLength: Int) -> Bool {
        (1...maxLength).contains(value.utf8.count) && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Letters only, 1 to `maxLength` of them (statuses and reasons from a fixed vocabulary).
    public static func isWord(_ value: String, maxLength: Int) -> Bool {
        (1...maxLength).contains(value.utf8.count)
            && value.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }
    }
}

/// One USSD hop (`POST /ussd/africastalking`).
public struct AfricasTalkingUSSDHop: Sendable, Hashable {
    public let sessionID: String
    /// `+` and digits.
    public let phoneNumber: String
    public let serviceCode: String
    /// Every input of the session so far, `*`-joined. Holds PINs: never log or store it.
    public let text: String
    public let networkCode: String?

    /// The longest `text` taken: far beyond any real session (a page is at most 182 characters).
    public static let maximumText = 4096

    public init(form: [String: String]) throws(MalformedCallback) {
        guard let session = form["sessionId"], CallbackField.isIdentifier(session) else { throw MalformedCallback("sessionId missing or malformed") }
        guard let phone = CallbackField.phone(form["phoneNumber"]) else { throw MalformedCallback("phoneNumber missing or malformed") }
        guard let code = form["serviceCode"], CallbackField.isPrintableToken(code, maxLength: 32) else {
            throw MalformedCallback("serviceCode missing or malformed")
        }
        guard let text = form["text"], CallbackField.isCleanText(text, maxBytes: Self.maximumText) else {
            throw MalformedCallback("text missing, too long or with control characters")
        }
        let network = form["networkCode"].flatMap { $0.isEmpty ? nil : $0 }
        if let network, !CallbackField.isPrintableToken(network, maxLength: 16) { throw MalformedCallback("networkCode malformed") }
        (self.sessionID, self.phoneNumber, self.serviceCode, self.text, self.networkCode) = (session, phone, code, text, network)
    }
}

/// An end-of-session notice (`POST /ussd/africastalking/events`). Its `input` field repeats every
/// PIN typed and is never read.
public struct AfricasTalkingUSSDEvent: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable {
        case success = "Success", incomplete = "Incomplete", failed = "Failed", other
    }

    public let sessionID: String
    public let phoneNumber: String
    /// `other` for a status Africa's Talking has not documented.
    public let status: Status

    public init(form: [String: String]) throws(MalformedCallback) {
        guard let session = form["sessionId"], CallbackField.isIdentifier(session) else { throw MalformedCallback("sessionId missing or malformed") }
        guard let phone = CallbackField.phone(form["phoneNumber"]) else { throw MalformedCallback("phoneNumber missing or malformed") }
        guard let status = form["status"], CallbackField.isWord(status, maxLength: 32) else { throw MalformedCallback("status missing or malformed") }
        (self.sessionID, self.phoneNumber) = (session, phone)
        self.status = Status(rawValue: status).flatMap { $0 == .other ? nil : $0 } ?? .other
    }
}

/// A message to the shortcode (`POST /sms/africastalking/inbound`).
public struct AfricasTalkingInboundSMS: Sendable, Hashable {
    /// Africa's Talking's id of the message: the de-duplication key.
    public let id: String
    public let from: String
    /// Holds PINs: never log it.
    public let text: String

    /// Ten concatenated segments; a command is a few words.
    public static let maximumText = 1600

    public init(form: [String: String]) throws(MalformedCallback) {
        guard let id = form["id"], CallbackField.isIdentifier(id, maxLength: 100) else { throw MalformedCallback("id missing or malformed") }
        guard let from = CallbackField.phone(form["from"]) else { throw MalformedCallback("from missing or malformed") }
        guard let text = form["text"], CallbackField.isCleanText(text, maxBytes: Self.maximumText * 4, allowing: ["\n", "\r", "\t"]),
            text.unicodeScalars.count <= Self.maximumText
        else { throw MalformedCallback("text missing, too long or with control characters") }
        (self.id, self.from, self.text) = (id, from, text)
    }
}

/// A delivery report (`POST /sms/africastalking/delivery`).
public struct AfricasTalkingDeliveryReport: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable {
        case sent = "Sent", submitted = "Submitted", buffered = "Buffered", success = "Success", rejected = "Rejected", failed = "Failed"
        case absentSubscriber = "AbsentSubscriber", expired = "Expired"

        /// A status no later report can change.
        public var isFinal: Bool { [.success, .rejected, .failed, .absentSubscriber, .expired].contains(self) }
    }

    /// The `messageId` Africa's Talking gave when the message was sent.
    public let id: String
    /// The status as sent (letters only); ``known`` is nil for one not documented.
    public let status: String
    public let failureReason: String?

    public var known: Status? { Status(rawValue: self.status) }

    public init(form: [String: String]) throws(MalformedCallback) {
        guard let id = form["id"], CallbackField.isIdentifier(id, maxLength: 100) else { throw MalformedCallback("id missing or malformed") }
        guard let status = form["status"], CallbackField.isWord(status, maxLength: 40) else { throw MalformedCallback("status missing or malformed") }
        let reason = form["failureReason"].flatMap { $0.isEmpty ? nil : $0 }
        if let reason, !CallbackField.isWord(reason, maxLength: 100) { throw MalformedCallback("failureReason malformed") }
        (self.id, self.status, self.failureReason) = (id, status, reason)
    }
}
