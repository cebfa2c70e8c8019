import NIOCore
import NIOPosix
import TestSupport
import Testing

@testable import Redis

@Suite struct RedisPipelineTests {
    /// `start()` while the first command's connection is being made (the service starting while a
    /// request already sends) must not make a second connection that takes the first one's place
    /// before the commands written on the first are flushed: a fresh-clone CI run lost a hop's
    /// commands that way, each failing after the command timeout.
    @Test func startingWhileTheFirstCommandConnectsLosesNoCommand() async throws {
        var configuration = try TestServers.redisConfiguration()
        if let seed = configuration.clusterSeeds.first { configuration = configuration.node(seed) }
        configuration.commandTimeout = .seconds(1)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let pipeline = RedisPipeline(configuration: configuration, eventLoop: loop)
        let replies = try await loop.submit {
            // One loop tick: the commands wait for the connection their first one started.
            let replies = (0..<3).map { _ in pipeline.enqueue(.bytes([Array("PING".utf8)])) }
            pipeline.start()
            pipeline.start()
            return replies
        }.get()
        for reply in replies { #expect(try await reply.get() == .status("PONG")) }
        #expect(try await pipeline.send(.strings(["PING"])) == .status("PONG"))
        await pipeline.stop()
    }
}
