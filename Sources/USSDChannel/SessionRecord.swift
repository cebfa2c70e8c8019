import Menus

/// What Redis keeps of one USSD session, under `ussd:s:{sessionId}` with the session TTL.
///
/// No secret is in it: the last hop's `text` (which repeats every PIN typed) is kept only as a
/// keyed seal and a length, enough to recognise a repeated hop and to find the new input of the
/// next one. A latest-input dialect's hop is sealed with its sequence or its input alone. The reply is kept byte for byte, so a repeated hop gets exactly what the first got.
struct SessionRecord: Codable, Sendable {
    /// The hops answered so far; the next hop's number is `hop + 1`.
    var hop: Int
    /// UTF-8 length and seal of the `text` of the hop last answered.
    var textLength: Int
    var textSeal: String
    /// The reply to that hop, `CON ...` or `END ...`.
    var reply: String
    /// The engine's state while the session goes on; nil once it ENDed.
    var state: SessionState?
    /// The resume snapshot offered on this session's first screen, until the user chooses.
    var offer: SessionState?
    /// Seal of a hop whose action is running, and when it started (Unix seconds): a copy of that
    /// hop waits for its reply instead of running the action again.
    var claim: String?
    var claimedAt: Double?
    /// The number the session belongs to: a hop of this session from another number is refused.
    var msisdn: String?
    /// The dialect's number of the hop last answered (Hubtel's `Sequence`), where it gives one.
    var sequence: Int?
    /// When the hop last answered was answered (Unix seconds), for the repeat window of
    /// latest-input dialects without a sequence.
    var answeredAt: Double?
    /// Until when (Unix seconds) the active-session index counts the session live: the score it
    /// was last given there. The index is written again only when less than half the session's
    /// TTL of it is left, not on every hop (``USSDSessionStore/save``).
    var indexedUntil: Int?

    private enum CodingKeys: String, CodingKey {
        case hop = "n", textLength = "tl", textSeal = "ts", reply = "r", state = "st", offer = "o", claim = "c", claimedAt = "ca", msisdn = "m", sequence = "sq"
        case answeredAt = "at", indexedUntil = "iu"
    }
}
