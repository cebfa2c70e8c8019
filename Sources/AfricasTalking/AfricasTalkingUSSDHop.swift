import Basics

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
