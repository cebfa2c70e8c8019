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
