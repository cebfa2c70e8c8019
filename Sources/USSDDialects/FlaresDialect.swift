import AfricasTalking
import Basics

/// Comviva Flares HTTP pull (Airtel in several markets), `GET /ussd/flares`.
///
/// Query `SessionID`, `MSISDN`, `MSC`, `input` (and `userid`, `password` where the operator sets
/// them, checked by the route against configuration, never here). The reply is plain text with
/// `Freeflow: FC` to continue or `FB` to end, and `charge: N`, `amount: 0` (no charging).
///
/// Assumed, from the open-source Airtel transport the reference cites (vumi): the first `input`
/// of a session is the dialled code without `*` and `#` (`384961` for `*384*96*1#`), kept as the
/// dial; a call carrying `clean` is the network's clean-up of an ended session, and with an
/// `error` as well, of one that failed or timed out. The first hop is the one whose session the
/// gateway has not seen: Flares does not mark it, so the route decides, and `phase` here is
/// `.continue` for every hop that is not a clean-up.
public struct FlaresHop: Sendable, Hashable {
    public let canonical: CanonicalHop
    /// The operator's credentials in the query, if any, for the route to compare.
    public let userID: String?
    public let password: String?

    /// Airtel shows 184 characters a screen; the gateway keeps to the 160 every network shows.
    public static let pageBudget = 160

    public init(query: [String: String]) throws(MalformedCallback) {
        let cleanUp = query["clean"] != nil
        let phase: CanonicalHop.Phase = cleanUp ? ((query["error"]).map { $0.isEmpty ? .end : .timeout } ?? .end) : .continue
        self.userID = query["userid"]
        self.password = query["password"]
        if let user = self.userID, !CallbackField.isCleanText(user, maxBytes: 64) { throw MalformedCallback("userid malformed") }
        if let password = self.password, !CallbackField.isCleanText(password, maxBytes: 128) { throw MalformedCallback("password malformed") }
        self.canonical = CanonicalHop(
            provider: .flares, sessionID: try DialectField.sessionID(query["SessionID"], "SessionID"),
            phone: try DialectField.phone(query["MSISDN"], "MSISDN"), input: try DialectField.input(query["input"], "input", required: !cleanUp),
            phase: phase, network: try DialectField.token(query["MSC"], "MSC")
        )
    }

    /// This hop as a session's first: its input is the dial.
    public var asFirst: CanonicalHop {
        let hop = self.canonical
        return CanonicalHop(
            provider: hop.provider, sessionID: hop.sessionID, phone: hop.phone, dial: hop.input, input: "", phase: .begin, network: hop.network
        )
    }

    public func render(_ reply: DialectReply) -> RenderedReply {
        RenderedReply(
            contentType: "text/plain; charset=utf-8", headers: ["Freeflow": reply.ends ? "FB" : "FC", "charge": "N", "amount": "0"], body: reply.text
        )
    }
}

/// Africa's Talking as a canonical hop: the whole path on every hop, a form in, `CON`/`END` text
/// out.
extension AfricasTalkingUSSDHop {
    public var canonical: CanonicalHop {
        let input = self.text.split(separator: "*", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        return CanonicalHop(
            provider: .africastalking, sessionID: self.sessionID, phone: String(self.phoneNumber.dropFirst()), serviceCode: self.serviceCode,
            dial: self.text.isEmpty ? self.serviceCode : nil, path: self.text, input: input, phase: self.text.isEmpty ? .begin : .continue,
            network: self.networkCode
        )
    }

    public static let pageBudget = 160

    public static func render(_ reply: DialectReply) -> RenderedReply {
        RenderedReply(contentType: "text/plain; charset=utf-8", headers: [:], body: (reply.ends ? "END " : "CON ") + reply.text)
    }
}
