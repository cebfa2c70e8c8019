@testable import GatewayHTTP
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The connection stays registered for reading while its one request is answered, and reads are
/// the pipelining handler's to hold once another request comes meanwhile.
@Suite struct ReadWhileAnsweringTests {
    /// Counts the reads that reach the socket (the front of the pipeline).
    final class SocketReads: ChannelOutboundHandler {
        typealias OutboundIn = HTTPServerResponsePart
        var count = 0
        func read(context: ChannelHandlerContext) {
            self.count += 1
            context.read()
        }
    }

    static let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/ussd/africastalking")

    /// A channel as the hop server builds one (without the codec: parts go in and out as they are).
    static func channel(keepReading: Bool) throws -> (EmbeddedChannel, SocketReads) {
        let reads = SocketReads()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(reads)
        if keepReading { try channel.pipeline.syncOperations.addHandler(ReadWhileAnswering()) }
        try channel.pipeline.syncOperations.addHandler(HTTPServerPipelineHandler())
        return (channel, reads)
    }

    /// One request read whole, then the channel's own read after the read completes (autoRead).
    static func request(_ channel: EmbeddedChannel) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head))
        channel.read()
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        channel.read()
    }

    static func answer(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    @Test func aRequestBeingAnsweredLeavesTheSocketReadable() throws {
        let (channel, reads) = try Self.channel(keepReading: true)
        try Self.request(channel)
        let whileAnswering = reads.count
        try Self.answer(channel)
        // Read interest asked for after the request's end, while the answer is made.
        #expect(whileAnswering == 2)
        // The next request is read and answered as before.
        try Self.request(channel)
        try Self.answer(channel)
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) != nil)
        _ = try channel.finish()
    }

    @Test func withoutItThePipeliningHandlerHoldsTheReadUntilTheAnswer() throws {
        let (channel, reads) = try Self.channel(keepReading: false)
        try Self.request(channel)
        // The head's read only: the one after the end is held while the answer is made.
        #expect(reads.count == 1)
        try Self.answer(channel)
        #expect(reads.count == 2)
        _ = try channel.finish()
    }

    @Test func anAnswerBeforeItsRequestEndedLeavesTheNextRequestReadable() throws {
        let (channel, reads) = try Self.channel(keepReading: true)
        // A refusal written while the body still comes (as a route may answer a body too large).
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head))
        try Self.answer(channel)
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        // The next request is answered as usual, with the socket readable meanwhile.
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        let before = reads.count
        channel.pipeline.fireChannelReadComplete()
        #expect(reads.count == before + 1, "read interest asked for while the second request is answered")
        _ = try channel.finish()
    }

    @Test func aPipelinedRequestLeavesReadsToThePipeliningHandler() throws {
        let (channel, reads) = try Self.channel(keepReading: true)
        try Self.request(channel)
        #expect(reads.count == 2)
        // The next request comes before the first is answered: it is held, and no more is read.
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head))
        channel.read()
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        channel.read()
        #expect(reads.count == 2)
        // The first answer lets the held request through; once both are answered, reads go on.
        try Self.answer(channel)
        try Self.answer(channel)
        try Self.request(channel)
        #expect(reads.count > 2)
        var heads = 0
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head = part { heads += 1 }
        }
        #expect(heads == 3)
        _ = try channel.finish()
    }
}
