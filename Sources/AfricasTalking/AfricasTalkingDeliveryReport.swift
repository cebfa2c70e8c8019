import Basics

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
