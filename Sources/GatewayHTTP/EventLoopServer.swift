import HummingbirdCore
import Logging
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

/// Hummingbird's HTTP/1.1 channel, with each connection's handling run on the connection's own
/// event loop instead of the Swift concurrency pool: a request costs no thread hand-off on its way
/// in or out.
struct EventLoopHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        self.http1.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await self.http1.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 whose connections are handled on their event loops (``EventLoopHTTP1Channel``).
    public static func http1OnEventLoops(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in EventLoopHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: configuration)) }
    }
}
