import Menus

/// A resume snapshot, under `ussd:rs:{sessionId}` (the number's latest session is named by
/// `ussd:r:{msisdn}`): where an unfinished session stood.
struct ResumeSnapshot: Codable, Sendable {
    var sessionId: String
    var state: SessionState

    private enum CodingKeys: String, CodingKey { case sessionId = "id", state = "st" }
}
