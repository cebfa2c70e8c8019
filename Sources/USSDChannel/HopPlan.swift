import Basics
import GatewayActions
import Menus

/// What the driver knows of a hop's session when it asks the planner: the stored record and, once
/// a plan asked for them, the number's hop count and its unfinished session. Each is read from
/// Redis only when a plan needs it, so a repeated hop costs no count and a shortcut no lookup.
struct HopFacts: Sendable {
    /// The stored record; nil for a session not seen yet (or expired).
    var record: SessionRecord?
    /// Its compare-and-set version (0: absent).
    var version = 0
    /// Whether the record is this process's copy rather than read from Redis just now.
    var fromCache = false
    /// The number's hops in the current minute, this one included; nil until counted.
    var hopsThisMinute: Int?
    /// Whether the number's unfinished session was looked up, and what it was.
    var resumeLookedUp = false
    var resumable: ResumeSnapshot?

    /// The language the session speaks, when it has begun.
    var language: String? { self.record?.state?.language ?? self.record?.offer?.language }
}

/// A reply with what the metrics say of it: the screen (`-` for none) and the kind of answer.
struct Reply: Sendable, Equatable {
    let text: String
    let screen: String
    let kind: String
}

/// What to do with a hop, decided by ``HopPlanner`` from the facts alone. ``USSDService`` performs
/// it: it reads what a plan asks for, writes what a plan says, runs the actions, and asks again.
enum HopPlan: Sendable {
    /// Count the hop in its number's minute (the rate limit), then plan again.
    case count
    /// Look up the number's unfinished session (the resume offer), then plan again.
    case lookUpResume
    /// This process's copy of the session is stale: read it from Redis, then plan again.
    case reload
    /// Answer, writing nothing: a replay, a hop after the end, an out-of-order text, an unknown code.
    case answer(Reply)
    /// A hop that cannot be the session's (another number's): refused with a reason safe to log.
    case refuse(String)
    /// A copy of a hop whose action is running: wait for that hop's reply.
    case wait(Wait)
    /// Write a record, then answer.
    case write(Write)
    /// Run the engine's step (its actions, then its page), then write.
    case run(Run)
    /// Another callback of the session changed it in a way this hop cannot answer from.
    case conflict
}

extension HopPlan {
    /// Waiting for the reply of the hop sealed `seal`; failing that, the "processing" page.
    struct Wait: Sendable, Equatable {
        let seal: String
        let screen: String
        let language: String
    }

    /// A record to write and the reply it stores. `mustWin`: when another copy of the hop wrote
    /// first, answer what that copy stored (a page the engine made); otherwise the reply does not
    /// depend on winning (a rate-limit page, the resume offer again) and is answered anyway.
    struct Write: Sendable {
        var record: SessionRecord
        var reply: Reply
        var resume: USSDSessionStore.ResumeChange
        var mustWin: Bool
        /// `ussd_resumes_total`'s `choice`, when this write answers or makes a resume offer.
        var resumeChoice: String?
    }

    /// The engine's first step for a hop, and what the hop's writes need.
    struct Run: Sendable {
        let sessionId: String
        let msisdn: MSISDN
        /// The hop's number in its session: part of its actions' idempotency key.
        let number: Int
        let seal: String
        let pathLength: Int
        /// The dialect's number of the hop, where it gives one.
        let sequence: Int?
        let first: Step
        /// `ussd_resumes_total`'s `choice` when the hop answered a resume offer.
        let resumeChoice: String?

        /// The key a money-moving action of this hop runs under: the same on every copy of the hop.
        var context: ActionContext {
            ActionContext(msisdn: self.msisdn, idempotencyKey: "ussd:\(self.sessionId):\(self.number)", channel: "ussd", conversation: "ussd:" + self.sessionId)
        }
    }

    /// What to do with the engine's current step while a hop runs.
    enum Next: Sendable {
        /// Claim the hop before the first action that may change anything; a copy that lost the
        /// claim waits for the reply in the screen's `language`.
        case claim(language: String)
        /// Run the action; resume the engine with its result.
        case act(ActionRequest, SessionState)
        /// The step is a page: write it as the hop's reply.
        case write(Write)
    }
}
