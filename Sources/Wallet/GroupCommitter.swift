import Foundation
import Postgres
import Synchronization

/// One call of `wallet_move`: everything the database needs for one movement.
struct MoveCall: Sendable, Encodable {
    let k: String
    let t: String
    let f: String
    let dm: String
    let dk: String
    let cm: String
    let ck: String
    let a: Int64
    let fee: Int64
    /// The PIN checked in the same statement (migration 0017): the customer id the value was made
    /// for, the value, the attempts before a lock, and the cooling-off window's start (seconds
    /// since 1970). Absent for a movement whose PIN was checked on its own.
    var pc: Int64? = nil
    var pv: String? = nil
    var pa: Int? = nil
    var ps: Double? = nil
}

/// Group commit: concurrent calls of one database function are gathered into one batch statement
/// (`wallet_move_batch`, `wallet_complete_deposit_batch`, migration 0010) and one commit, so one
/// WAL flush serves many of them.
///
/// No call waits for a batch to fill: a call that finds a lane free starts a batch of everything
/// queued at once (alone, when the wallet is quiet), and calls that arrive while every lane is
/// busy form the next batch. Each call keeps its own idempotency key (or CheckoutRequestID),
/// replay, refusal and receipts. A batch that raises is rolled back whole, and each of its calls
/// is then run on its own (`single`), with the usual retries: the keys make that safe even when
/// the batch's commit was lost with its connection.
package final class GroupCommitter<Call: Sendable & Encodable>: Sendable {
    package typealias Row = PostgresRow

    private struct Pending {
        let call: Call
        let continuation: CheckedContinuation<Row, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var busyLanes = 0
    }

    /// Runs its closure on one of the Postgres pool's threads with one connection; the closure is
    /// handed a function that runs one batch on that connection, synchronously: a batch of one
    /// call as that call alone, with the single path's retries, so what it throws is the call's
    /// answer (it is not run again). Given, a lane runs batch after batch on that thread while
    /// calls wait, resuming each batch's callers from there: no hand-off between a task and the
    /// pool's thread per batch, and none for a call that came alone while the lane was busy.
    package typealias Lane = @Sendable (_ body: @escaping @Sendable (_ runBatch: ([Call]) throws -> [Row]) -> Void) async throws -> Void

    /// Batches in flight at once (each on its own connection).
    let lanes: Int
    /// Most calls in one batch.
    let maximumBatch: Int
    private let state = Mutex(State())
    private let batch: @Sendable ([Call]) async throws -> [Row]
    private let single: @Sendable (Call) async throws -> Row
    private let lane: Lane?
    /// True when others wait for the lane's connection: the lane then gives it back after the
    /// batch it is running, and queues for it again like everyone else.
    private let othersWaiting: @Sendable () -> Bool

    package init(
        lanes: Int, maximumBatch: Int, batch: @escaping @Sendable ([Call]) async throws -> [Row],
        single: @escaping @Sendable (Call) async throws -> Row, lane: Lane? = nil,
        othersWaiting: @escaping @Sendable () -> Bool = { false }
    ) {
        self.lanes = max(1, lanes)
        self.maximumBatch = max(1, maximumBatch)
        self.batch = batch
        self.single = single
        self.lane = lane
        self.othersWaiting = othersWaiting
    }

    /// The call's result row, committed.
    package func submit(_ call: Call) async throws -> Row {
        // Group commit off: every call alone, as many at once as come, with no lane to wait for.
        if self.maximumBatch == 1 { return try await self.single(call) }
        return try await withCheckedThrowingContinuation { continuation in
            let first = self.state.withLock { state -> [Pending]? in
                state.queue.append(Pending(call: call, continuation: continuation))
                guard state.busyLanes < self.lanes else { return nil }
                state.busyLanes += 1
                return self.take(&state)
            }
            if let first {
                Task { await self.drain(first) }
            }
        }
    }

    /// Calls waiting for a lane.
    package var queued: Int { self.state.withLock { $0.queue.count } }

    private func take(_ state: inout State) -> [Pending] {
        let count = min(state.queue.count, self.maximumBatch)
        let taken = Array(state.queue.prefix(count))
        state.queue.removeFirst(count)
        return taken
    }

    /// Runs batches on one lane until nothing is queued.
    private func drain(_ first: [Pending]) async {
        var next: [Pending]? = first
        while let batch = next {
            if let lane = self.lane {
                if let unsettled = await self.runOnThread(lane, from: batch) { await self.runAlone(unsettled) }
            } else {
                await self.run(batch)
            }
            next = self.state.withLock { state -> [Pending]? in
                guard !state.queue.isEmpty else {
                    state.busyLanes -= 1
                    return nil
                }
                return self.take(&state)
            }
        }
    }

    private func run(_ pending: [Pending]) async {
        if pending.count > 1 {
            do {
                let rows = try await self.batch(pending.map(\.call))
                if rows.count == pending.count {
                    for (waiting, row) in zip(pending, rows) { waiting.continuation.resume(returning: row) }
                    return
                }
            } catch let error as PostgresError where error.code == .unconfirmedCommit {
                // Committed on the primary but unconfirmed by the standby (its wait was
                // cancelled): each call alone would wait for the same standby again (its row locks
                // write WAL, so its commit waits too), past the aggregator's window. Unknown, at once.
                for waiting in pending { waiting.continuation.resume(throwing: error) }
                return
            } catch {
                // Rolled back whole: each call on its own below.
            }
        }
        await self.runAlone(pending)
    }

    /// Batch after batch on the pool's thread (`lane`), from `first`, while calls wait. Gives back the calls it could not settle, for `runAlone`: a batch that raised (rolled
    /// back whole), or `first` when the lane could not start (no connection).
    private func runOnThread(_ lane: Lane, from first: [Pending]) async -> [Pending]? {
        let unsettled = Unsettled(first)
        do {
            try await lane { runBatch in
                var batch = unsettled.value.withLock { $0 } ?? []
                unsettled.value.withLock { $0 = nil }
                while true {
                    do {
                        let rows = try runBatch(batch.map(\.call))
                        guard rows.count == batch.count else {
                            unsettled.value.withLock { $0 = batch }
                            return
                        }
                        for (waiting, row) in zip(batch, rows) { waiting.continuation.resume(returning: row) }
                    } catch let error as PostgresError where error.code == .unconfirmedCommit {
                        // As in `run`: unknown, at once.
                        for waiting in batch { waiting.continuation.resume(throwing: error) }
                    } catch where batch.count == 1 {
                        // A call alone, retried as on its own already: its answer.
                        batch[0].continuation.resume(throwing: error)
                    } catch {
                        unsettled.value.withLock { $0 = batch }
                        return
                    }
                    // The next batch on this thread while calls wait (one alone is a batch of one);
                    // none goes back to the lane's loop, as does everything when others wait for
                    // a connection of the pool (a small pool is shared fairly).
                    if self.othersWaiting() { return }
                    let more = self.state.withLock { state -> [Pending]? in
                        guard !state.queue.isEmpty else { return nil }
                        return self.take(&state)
                    }
                    guard let more else { return }
                    batch = more
                }
            }
        } catch {
            // The lane never started (no connection, shutting down): `first` is still unsettled.
        }
        return unsettled.value.withLock { $0 }
    }

    /// What a lane's thread leaves unsettled, shared with it.
    private final class Unsettled: Sendable {
        let value: Mutex<[Pending]?>
        init(_ pending: [Pending]) { self.value = Mutex(pending) }
    }

    /// Each call on its own, with the usual retries.
    private func runAlone(_ pending: [Pending]) async {
        // Side by side, as if they had come alone: when the database is down, each fails in its
        // own time instead of after all the others' timeouts.
        await withTaskGroup(of: Void.self) { group in
            for waiting in pending {
                group.addTask {
                    do {
                        waiting.continuation.resume(returning: try await self.single(waiting.call))
                    } catch {
                        waiting.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
