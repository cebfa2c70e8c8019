import AfricasTalking
import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Logging
import Menus
import Redis
import Wallet

/// End-of-session events and the live-session count: what the aggregator reports after a session
/// is over, apart from the hop path.
extension USSDService {
    /// An end-of-session event: a `Success` drops the resume snapshot; `Incomplete` (the user left
    /// or was dropped while a screen waited for input) and `Failed` keep it for the resume window.
    /// The end of a session as Africa's Talking reports it, with the screens it showed (the hop
    /// markers it returns, in order): counted by status and the screen the session ended on (where
    /// customers leave), timed, and logged with screen ids only.
    public func sessionEnded(
        sessionId: String, msisdn: MSISDN, status: AfricasTalkingUSSDEvent.Status, screens: [String], hops: Int?, durationInMillis: Int?
    ) async throws {
        let statusLabel = status.rawValue.lowercased()
        // Only screens of this menus.json become label values or reach the log: the series stay
        // bounded, and a marker we did not send (the event names anything it likes) is not echoed.
        let screens = screens.map { self.engine.graph.screen($0) != nil ? $0 : "other" }
        let last = screens.last ?? "none"
        self.metrics.counter("ussd_sessions_ended_total", [("status", statusLabel), ("last_screen", last)]).increment()
        if let durationInMillis {
            self.metrics.timer("ussd_session_duration_seconds", [("status", statusLabel)]).record(duration: .milliseconds(durationInMillis))
        }
        self.logger.info(
            "ussd session ended",
            metadata: [
                "session": .string(sessionId), "status": .string(statusLabel), "last_screen": .string(last),
                "hops": .string(hops.map(String.init) ?? "-"), "screens": .string(screens.joined(separator: ">")),
            ]
        )
        // The index only feeds a gauge: it is not worth failing the event for.
        try? await self.store.endSession(sessionId)
        if status == .success {
            try await self.store.dropResume(sessionId)
        } else {
            try await self.store.extendResume(sessionId)
        }
    }

    /// A dialect's end-of-session or timeout notice (Hubtel's `Release` and `Timeout`, Flares'
    /// clean-up): closed as Africa's Talking's event closes a session, with the status its record
    /// tells (`Success` when it ENDed, else `Incomplete`, or `Failed` on a timeout) and the screen
    /// it was on. A notice for another number's session changes nothing. Never throws: the
    /// aggregator is owed an answer whatever Redis says, and the session expires on its own.
    public func sessionClosed(sessionId: String, msisdn: MSISDN, timedOut: Bool) async {
        do {
            let record = try await self.store.load(sessionId)?.record
            if let owner = record?.msisdn, owner != msisdn.value {
                self.logger.warning("an end of session from another number", metadata: ["session": .string(sessionId)])
                return
            }
            let ended = record != nil && record?.state == nil && record?.offer == nil
            let status: AfricasTalkingUSSDEvent.Status = ended ? .success : (timedOut ? .failed : .incomplete)
            try await self.sessionEnded(
                sessionId: sessionId, msisdn: msisdn, status: status, screens: record?.state.map { [$0.screen] } ?? [], hops: record?.hop,
                durationInMillis: nil
            )
        } catch {
            self.logger.error("ussd session end failed", metadata: ["session": .string(sessionId), "error": .string(safeDescription(of: error))])
        }
    }

    /// Sessions with a live state right now (all replicas), for the `ussd_active_sessions` gauge.
    public func activeSessions() async throws -> Int {
        try await self.store.activeSessions()
    }
}
