import ConnectionPool
import Foundation
import Synchronization
import Testing
import TestSupport

/// A connection that records which threads used it and whether it was closed.
final class CountingConnection: PoolableConnection {
    let closed = Atomic<Bool>(false)
    func close() { self.closed.store(true, ordering: .relaxed) }
}

final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}

final class Counter: Sendable {
    let value = Mutex<Int>(0)
}

@Suite struct ConnectionPoolTests {
    @Test func exhaustedPoolMakesCallersWaitThenFailWithATimeout() async throws {
        // Given a pool of one connection held by a caller until the test lets go (not for a fixed
        // time: on a loaded machine the waiter's timer may fire late, never early)
        let pool = ConnectionPool(name: "test", size: 1, acquireTimeout: .milliseconds(200)) { CountingConnection() }
        let (letGo, release) = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await pool.withConnection { _ in for await _ in letGo {} }
        }
        #expect(try await eventually { pool.usage.leased > 0 })

        // When a second caller asks for a connection
        let error = await #expect(throws: ConnectionPoolError.self) {
            try await pool.withConnection { _ in }
        }

        // Then it waited and failed with the pool's timeout error, and the pool is still usable
        #expect(error?.isAcquireTimeout == true)
        #expect(error?.description.contains("test pool exhausted") == true)
        #expect(pool.usage.waiting == 0)
        release.finish()
        _ = await holder.result
        try await pool.withConnection { _ in }
        await pool.shutdown()
    }

    @Test func waitersAreServedInOrderWhenConnectionsComeBack() async throws {
        let pool = ConnectionPool(name: "test", size: 2, acquireTimeout: .seconds(10)) { CountingConnection() }
        let served = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await pool.run { _ in
                        served.value.withLock { $0 += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let count = served.value.withLock { $0 }
        #expect(count == 50)
        #expect(pool.usage.leased == 0)
        await pool.shutdown()
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let pool = ConnectionPool(name: "test", size: 1, acquireTimeout: .seconds(30)) { CountingConnection() }
        // A caller busy with its connection until cancelled: the pool's only lease stays taken.
        let holder = Task { try await pool.withConnection { _ in try await Task.sleep(for: .seconds(30)) } }
        #expect(try await eventually { pool.usage.leased > 0 })
        let waiter = Task { try await pool.withConnection { _ in } }
        #expect(try await eventually { pool.usage.waiting > 0 })

        waiter.cancel()
        let result = await waiter.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(pool.usage.waiting == 0)
        holder.cancel()
        _ = await holder.result
        await pool.shutdown()
    }

    @Test func shutdownWaitsForLeasesClosesConnectionsAndRefusesNewCallers() async throws {
        let connection = CountingConnection()
        let pool = ConnectionPool(name: "test", size: 1, acquireTimeout: .seconds(5)) { connection }
        let finished = Flag()
        let inFlight = Task {
            try await pool.withConnection { _ in
                // A query in flight when shutdown begins: the work shutdown must wait for.
                try await Task.sleep(for: .milliseconds(200))
                finished.value.store(true, ordering: .relaxed)
            }
        }
        #expect(try await eventually { pool.usage.leased > 0 })

        await pool.shutdown()

        let finishedBeforeShutdownReturned = finished.value.load(ordering: .relaxed)
        #expect(finishedBeforeShutdownReturned, "shutdown returned before the leased connection came back")
        try await inFlight.value
        let closed = connection.closed.load(ordering: .relaxed)
        #expect(closed)
        let error = await #expect(throws: ConnectionPoolError.self) { try await pool.withConnection { _ in } }
        #expect(error?.isShutdown == true)
    }

    @Test func blockingCallsRunOffTheCallersThread() async throws {
        let pool = ConnectionPool(name: "test", size: 1, acquireTimeout: .seconds(5)) { CountingConnection() }
        let name = try await pool.run { _ in pthreadName() }
        #expect(name.hasPrefix("TP-"), "ran on \(name), not a pool thread")
        await pool.shutdown()
    }
}

/// The calling thread's name, as Linux keeps it.
private func pthreadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}
