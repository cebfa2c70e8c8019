import Foundation

/// One Redis connection with an I/O thread of its own that pipelines automatically.
///
/// Callers queue commands; the thread takes everything queued, writes it in one go and reads the
/// replies in order, so under concurrency many commands share one round trip and one thread
/// wake-up (ioredis and StackExchange.Redis do the same). hiredis blocks, and only this thread
/// ever calls it. Blocking commands (`BLPOP`, `SUBSCRIBE`) hold up everything queued behind them
/// and have no place on a shared pipeline.
///
/// `@unchecked Sendable`: `queue`, `outstanding` and `stopped` are guarded by `condition`; the
/// connection is touched only by the I/O thread.
final class RedisPipeline: @unchecked Sendable {
    private struct Command {
        let outgoing: RedisConnection.Outgoing
        let continuation: CheckedContinuation<RedisValue, any Error>
    }

    /// Most commands written before reading replies.
    static let maximumBatch = 256

    private let connection: RedisConnection
    private let condition = NSCondition()
    private var queue: [Command] = []
    private var outstanding = 0
    private var stopped = false
    private var exited: CheckedContinuation<Void, Never>?
    private var hasExited = false
    private var started = false
    private let index: Int

    private let name: String

    /// Makes the pipeline; its I/O thread starts with the first command (or the client's `run`).
    init(configuration: RedisConfiguration, index: Int, name: String = "redis-io") {
        self.connection = RedisConnection(configuration: configuration)
        self.index = index
        self.name = name
    }

    /// Starts the I/O thread unless it runs already. Call with `condition` locked.
    private func startLocked() {
        guard !self.started, !self.stopped else { return }
        self.started = true
        let thread = Thread { [self] in self.loop() }
        thread.name = "\(self.name)-\(self.index)"
        thread.start()
    }

    /// Starts the I/O thread now rather than with the first command.
    func start() {
        self.condition.lock()
        self.startLocked()
        self.condition.unlock()
    }

    /// Commands queued or awaiting their reply; the client sends to the least busy pipeline.
    var load: Int {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.outstanding
    }

    /// Sends one command and waits for its reply; with `asking`, `ASKING` goes just before it on
    /// the same connection.
    func send(_ arguments: [[UInt8]], asking: Bool = false) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            self.condition.lock()
            guard !self.stopped else {
                self.condition.unlock()
                continuation.resume(throwing: RedisError(code: .connection, detail: "client shut down"))
                return
            }
            self.startLocked()
            self.queue.append(Command(outgoing: RedisConnection.Outgoing(arguments: arguments, asking: asking), continuation: continuation))
            self.outstanding += 1
            self.condition.signal()
            self.condition.unlock()
        }
    }

    /// Lets queued commands finish, closes the connection and ends the thread.
    func stop() async {
        await withCheckedContinuation { continuation in
            self.condition.lock()
            self.stopped = true
            if self.hasExited || !self.started {
                self.hasExited = true
                self.condition.unlock()
                continuation.resume()
                return
            }
            self.exited = continuation
            self.condition.signal()
            self.condition.unlock()
        }
    }

    private func loop() {
        while true {
            self.condition.lock()
            while self.queue.isEmpty && !self.stopped { self.condition.wait() }
            if self.queue.isEmpty {
                self.hasExited = true
                let exited = self.exited
                self.condition.unlock()
                self.connection.close()
                exited?.resume()
                return
            }
            let count = min(self.queue.count, Self.maximumBatch)
            let batch = Array(self.queue.prefix(count))
            self.queue.removeFirst(count)
            self.condition.unlock()

            let results = self.connection.executeBatch(batch.map(\.outgoing))

            self.condition.lock()
            self.outstanding -= count
            self.condition.unlock()
            for (command, result) in zip(batch, results) {
                command.continuation.resume(with: result.mapError { $0 as any Error })
            }
        }
    }
}
