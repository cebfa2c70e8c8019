/// The pipelined connections to one Redis server (`poolSize` of them, each with its own I/O
/// thread). A command goes to the least busy one, so concurrent commands share round trips.
final class RedisNode: Sendable {
    let endpoint: RedisEndpoint
    private let pipelines: [RedisPipeline]

    init(configuration: RedisConfiguration, threadName: String = "redis-io") {
        self.endpoint = RedisEndpoint(host: configuration.host, port: configuration.port)
        self.pipelines = (0..<configuration.poolSize).map { RedisPipeline(configuration: configuration, index: $0, name: threadName) }
    }

    /// Starts the I/O threads now rather than with the first command.
    func start() {
        for pipeline in self.pipelines { pipeline.start() }
    }

    /// Lets queued commands finish and closes the connections.
    func stop() async {
        for pipeline in self.pipelines { await pipeline.stop() }
    }

    /// Commands queued or awaiting replies on this node.
    var load: Int { self.pipelines.reduce(0) { $0 + $1.load } }

    func send(_ arguments: [[UInt8]], asking: Bool = false) async throws -> RedisValue {
        try await self.leastBusyPipeline().send(arguments, asking: asking)
    }

    private func leastBusyPipeline() -> RedisPipeline {
        guard self.pipelines.count > 1 else { return self.pipelines[0] }
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
