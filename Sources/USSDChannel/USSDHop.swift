import Wallet

/// One hop as Africa's Talking reports it, decoded and checked at the edge.
public struct USSDHop: Sendable {
    public let sessionId: String
    public let msisdn: MSISDN
    public let serviceCode: String
    /// Every input of the session so far, `*`-joined. Holds PINs: never log or store it.
    public let text: String

    public init(sessionId: String, msisdn: MSISDN, serviceCode: String, text: String) {
        self.sessionId = sessionId
        self.msisdn = msisdn
        self.serviceCode = serviceCode
        self.text = text
    }
}
