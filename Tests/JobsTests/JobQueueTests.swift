import Jobs
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Work handed on after a reply is finished at graceful shutdown, or dropped when the queue says so.
@Suite struct JobQueueTests {
    final class Done: Sendable {
        let count = Mutex(0)
    }

    struct Owner: Service {
        let queue: JobQueue
        func run() async throws { await self.queue.run() }
    }

    func shutDownWithJobsRunning(_ atShutdown: JobQueue.AtShutdown) async throws -> (done: Int, takenAfter: Bool) {
        let (queue, done) = (JobQueue(atShutdown: atShutdown), Done())
        let started = AsyncStream<Void>.makeStream()
        for _ in 0..<3 {
            queue.add {
                started.continuation.yield()
                // Work that outlasts the shutdown signal: a push, a payout, a callback.
                try? await Task.sleep(for: .milliseconds(200))
                if !Task.isCancelled { done.count.withLock { $0 += 1 } }
            }
        }
        let group = ServiceGroup(services: [Owner(queue: queue)], logger: Logger(label: "jobs-test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var seen = 0
            for await _ in started.stream {
                seen += 1
                if seen == 3 { break }
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        return (done.count.withLock { $0 }, queue.add {})
    }

    @Test func gracefulShutdownFinishesTheJobsRunningAndTakesNoMore() async throws {
        let (done, takenAfter) = try await self.shutDownWithJobsRunning(.finish)
        #expect(done == 3 && !takenAfter)
    }

    @Test func aDroppingQueueCancelsItsJobsAtShutdown() async throws {
        let (done, takenAfter) = try await self.shutDownWithJobsRunning(.drop)
        #expect(done == 0 && !takenAfter)
    }
}
