import NIOCore

/// A task executor that runs its jobs on one NIO event loop.
///
/// A task that prefers it stays on the loop that owns its connection: the request's bytes arrive,
/// the handler runs and the response is written on one thread, and a client whose replies complete
/// on that loop resumes the task there too. Only code that never blocks may run under it; the
/// gateway's blocking C calls (libpq, scrypt, libcurl) run on threads of their own and resume the
/// task through a continuation.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = self.asUnownedTaskExecutor()
        self.eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
