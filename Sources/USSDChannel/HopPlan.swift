import Menus

/// What to do with a hop, decided from the session's stored record alone: pure, so every case is
/// tested without Redis. ``USSDService`` performs the decision.
enum HopPlan: Equatable {
    /// The same hop again: its stored reply, byte for byte, and nothing runs.
    case replay(reply: String, screen: String)
    /// A copy of a hop whose action is running: wait for that hop's reply.
    case wait(screen: String, language: String)
    /// The session ENDed; no later hop of it can be answered.
    case afterEnd
    /// `text` does not extend the previous hop's: a confused or forged callback.
    case outOfOrder(language: String)
    /// The session belongs to another number (as Redis says): refused, nothing changes.
    case refuse
    /// This process's copy of the session is stale: load it from Redis and plan again.
    case reload
    /// No session yet (or its record expired): start from the top, or offer to resume.
    case begin
    /// The answer to "continue where you left off?".
    case resumeChoice(offer: SessionState, input: String)
    /// The engine takes `input` on the screen in `state`.
    case advance(state: SessionState, input: String)

    /// Plans a hop of `msisdn` whose `text` seals to `seal`; `record` is the stored session (from
    /// this process's copy when `fromCache`). `input` finds the new input after a record's text.
    /// `isRepeat` says whether an equal seal is this hop again (always, but for a latest-input
    /// dialect without a sequence: only within the repeat window; after it, the same input is the
    /// user's answer to the next screen).
    static func plan(
        record: SessionRecord?, msisdn: String, seal: String, fromCache: Bool, isRepeat: (SessionRecord) -> Bool = { _ in true },
        input: (SessionRecord) -> String?
    ) -> HopPlan {
        guard let record else { return .begin }
        if let owner = record.msisdn, owner != msisdn {
            // Checked before a replay too: a stored reply (a balance, say) is the owner's alone.
            return fromCache ? .reload : .refuse
        }
        if record.textSeal == seal && isRepeat(record) { return .replay(reply: record.reply, screen: record.state?.screen ?? "end") }
        if record.claim == seal {
            return .wait(screen: record.state?.screen ?? "-", language: record.state?.language ?? record.offer?.language ?? "")
        }
        guard record.state != nil || record.offer != nil else { return .afterEnd }
        guard let next = input(record) else { return .outOfOrder(language: record.state?.language ?? record.offer?.language ?? "") }
        if let offer = record.offer { return .resumeChoice(offer: offer, input: next) }
        return .advance(state: record.state!, input: next)
    }
}
