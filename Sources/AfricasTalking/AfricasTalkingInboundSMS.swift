import Basics

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
