import Basics
import Menus

/// The planner's decisions while a hop runs: when to claim it, which page ends it, and what a lost
/// write means.
extension HopPlanner {
    /// What to do with the engine's `step`: claim the hop before its first action that may change
    /// anything (so a copy of the hop waits for this reply instead of acting too), run an action,
    /// or write the page as the hop's reply.
    func next(_ step: Step, claimed: Bool, _ run: HopPlan.Run, now: Double) -> HopPlan.Next {
        switch step {
        case .perform(let request, let state):
            if !claimed && !self.isLookup(request.action) { return .claim(language: state.language) }
            return .act(request, state)
        case .show(let page, let state):
            let record = SessionRecord(
                hop: run.number, textLength: run.pathLength, textSeal: run.seal, reply: (page.continues ? "CON " : "END ") + page.text,
                state: page.continues ? state : nil
            )
            let resume: USSDSessionStore.ResumeChange =
                page.continues ? .set(ResumeSnapshot(sessionId: run.sessionId, state: Self.resumable(state))) : .drop
            let reply = Reply(text: record.reply, screen: page.screen, kind: page.continues ? "con" : "end")
            return .write(.init(record: self.stamped(record, run, now: now), reply: reply, resume: resume, mustWin: true))
        }
    }

    /// An action past the hop's deadline: it finishes on its own and its result goes by SMS; the
    /// hop ends with the "we are processing your request" page.
    func late(_ run: HopPlan.Run, _ state: SessionState, now: Double) -> HopPlan.Write {
        let page = "END " + self.engine.systemPage("processing", language: state.language).text
        let record = SessionRecord(hop: run.number, textLength: run.pathLength, textSeal: run.seal, reply: page)
        return .init(record: self.stamped(record, run, now: now), reply: Reply(text: page, screen: state.screen, kind: "end"), resume: .drop, mustWin: true)
    }

    /// The record that marks the hop as running in its session.
    func claim(_ run: HopPlan.Run, _ facts: HopFacts, now: Double) -> SessionRecord {
        var claim = facts.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
        (claim.claim, claim.claimedAt, claim.msisdn) = (run.seal, now, run.msisdn.value)
        return claim
    }

    /// Another callback wrote the session before this hop's claim: from a stale copy, plan again
    /// from Redis; else it was a copy of this hop (or a newer one): wait for its reply.
    func lostClaim(_ run: HopPlan.Run, _ facts: HopFacts, language: String) -> HopPlan {
        facts.fromCache ? .reload : .wait(.init(seal: run.seal, screen: "-", language: language))
    }

    /// Another callback wrote the session before `write`. From a stale copy, plan again from Redis.
    /// A reply that does not depend on winning is answered anyway; one that does is the winner's
    /// when the winner was a copy of this hop (`winner`, read after the loss), else a conflict.
    func lostWrite(_ write: HopPlan.Write, _ facts: HopFacts, winner: SessionRecord?) -> HopPlan {
        if facts.fromCache { return .reload }
        guard write.mustWin else { return .answer(write.reply) }
        guard let winner, winner.textSeal == write.record.textSeal else { return .conflict }
        return .answer(Reply(text: winner.reply, screen: write.reply.screen, kind: "replay"))
    }

    func stamped(_ record: SessionRecord, _ run: HopPlan.Run, now: Double) -> SessionRecord {
        var record = record
        (record.msisdn, record.sequence, record.answeredAt) = (run.msisdn.value, run.sequence, now)
        return record
    }

    /// A state fit to keep for resume: no seals of secrets.
    static func resumable(_ state: SessionState) -> SessionState {
        var state = state
        state.sealed = [:]
        return state
    }
}
