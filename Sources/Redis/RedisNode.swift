import NIOCore
import NIOPosix

/// The pipelined connections to one Redis server: `poolSize` on each event loop of NIO's shared
/// group. A command sent from an event loop goes to a connection of that loop, so its reply
/// resumes the caller without a thread hand-off; from elsewhere, to the least busy connection.
final class RedisNode: Sendable {
    let endpoint: RedisEndpoint
    private let pipelines: [RedisPipeline]

    /// `tls`: the client's one TLS context (`rediss://`), nil for plain TCP.
    init(configuration: RedisConfiguration, tls: RedisTLS?, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = RedisEndpoint(host: configuration.host, port: configuration.port)
        var pipelines: [RedisPipeline] = []
        for loop in group.makeIterator() {
            for _ in 0..<max(1, configuration.poolSize) { pipelines.append(RedisPipeline(configuration: configuration, eventLoop: loop, tls: tls)) }
        }
        self.pipelines = pipelines
    }

    /// Connects now rather than with the first command.
    func start() {
        for pipeline in self.pipelines { pipeline.start() }
    }

    /// Lets queued commands finish and closes the connections.
    func stop() async {
        for pipeline in self.pipelines { await pipeline.stop() }
    }

    /// Commands queued or awaiting replies on this node.
    var load: Int { self.pipelines.reduce(0) { $0 + $1.load } }

    func send(_ arguments: RedisArguments, asking: Bool = false) async throws -> RedisValue {
        try await self.leastBusyPipeline().send(arguments, asking: asking)
    }

    /// Queues a command on the least busy pipeline (this loop's, from an event loop) and returns its
    /// reply to come, without a task: commands queued in one loop tick leave in one write.
    func enqueue(_ arguments: RedisArguments) -> EventLoopFuture<RedisValue> {
        self.leastBusyPipeline().enqueueCounted(arguments)
    }

    private func leastBusyPipeline() -> RedisPipeline {
        guard self.pipelines.count > 1 else { return self.pipelines[0] }
        if let current = MultiThreadedEventLoopGroup.currentEventLoop,
            let local = self.pipelines.first(where: { $0.eventLoop === current })
        {
            return local
        }
        var best = self.pipelines[0]
        var bestLoad = best.load
        for pipeline in self.pipelines.dropFirst() where bestLoad > 0 {
            let load = pipeline.load
            if load < bestLoad {
                best = pipeline
                bestLoad = load
            }
        }
        return best
    }
}
