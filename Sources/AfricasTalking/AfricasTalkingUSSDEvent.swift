import Basics

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
    /// The hop markers the gateway sent in `at-ussd-hop-metadata`, in hop order, as Africa's
    /// Talking returns them in `hopsMetadata`. Assumed `|`-joined (which is why a marker may not
    /// hold `|`); a JSON array of strings is taken too. Empty when absent.
    public let hopsMetadata: [String]
    public let hopsCount: Int?
    public let durationInMillis: Int?

    /// A marker's limits, as Africa's Talking sets them for `at-ussd-hop-metadata`.
    public static let maximumMarker = 99

    public init(form: [String: String]) throws(MalformedCallback) {
        guard let session = form["sessionId"], CallbackField.isIdentifier(session) else { throw MalformedCallback("sessionId missing or malformed") }
        guard let phone = CallbackField.phone(form["phoneNumber"]) else { throw MalformedCallback("phoneNumber missing or malformed") }
        guard let status = form["status"], CallbackField.isWord(status, maxLength: 32) else { throw MalformedCallback("status missing or malformed") }
        (self.sessionID, self.phoneNumber) = (session, phone)
        self.status = Status(rawValue: status).flatMap { $0 == .other ? nil : $0 } ?? .other
        self.hopsMetadata = try Self.markers(form["hopsMetadata"])
        self.hopsCount = try Self.count(form["hopsCount"], "hopsCount", max: 10_000)
        self.durationInMillis = try Self.count(form["durationInMillis"], "durationInMillis", max: 86_400_000)
    }

    /// A marker as the gateway sends one: 1 to 99 of `[A-Za-z0-9._:-]` (a screen id, so never a
    /// `|`, which Africa's Talking forbids, nor anything a customer typed).
    public static func isMarker(_ value: Substring) -> Bool {
        (1...Self.maximumMarker).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
            }
    }

    private static func markers(_ field: String?) throws(MalformedCallback) -> [String] {
        guard let field, !field.isEmpty else { return [] }
        guard field.utf8.count <= 100 * (Self.maximumMarker + 1) else { throw MalformedCallback("hopsMetadata too long") }
        var items: [Substring]
        if field.hasPrefix("["), field.hasSuffix("]") {
            // A JSON array of strings: the markers hold neither quotes nor commas.
            items = field.dropFirst().dropLast().split(separator: ",").map { item in
                var item = item.drop { $0 == " " }
                while item.last == " " { item.removeLast() }
                return item
            }
            guard items.allSatisfy({ $0.count >= 2 && $0.first == "\"" && $0.last == "\"" }) else { throw MalformedCallback("hopsMetadata malformed") }
            items = items.map { $0.dropFirst().dropLast() }
        } else {
            items = field.split(separator: "|", omittingEmptySubsequences: false)
        }
        guard items.allSatisfy(Self.isMarker) else { throw MalformedCallback("hopsMetadata malformed") }
        return items.map(String.init)
    }

    private static func count(_ field: String?, _ name: String, max: Int) throws(MalformedCallback) -> Int? {
        guard let field, !field.isEmpty else { return nil }
        guard field.utf8.count <= 10, let value = Int(field), (0...max).contains(value) else { throw MalformedCallback("\(name) malformed") }
        return value
    }
}
