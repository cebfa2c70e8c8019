import Menus

/// A resume snapshot, under `ussd:r:{msisdn}`: where an unfinished session stood.
struct ResumeSnapshot: Codable, Sendable {
    var sessionId: String
    var state: SessionState

    private enum CodingKeys: String, CodingKey { case sessionId = "id", state = "st" }
}
