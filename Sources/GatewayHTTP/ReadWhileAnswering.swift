import NIOCore
import NIOHTTP1

/// Keeps a connection registered for reading while its one request is answered.
///
/// NIO's pipelining handler holds the channel's reads from a request's end until its answer ends,
/// so the socket is taken out of the event loop's interest set after every request and put back
/// after every answer: two `epoll_ctl` calls per hop, about 2.6 % of a menu hop's CPU. A client
/// that waits for its answer (every aggregator does) sends nothing meanwhile, so this handler,
/// which sits in front of the pipelining handler, asks for the next read itself while exactly one
/// request is unanswered and nothing of another came. Whatever does come is read once and held by
/// the pipelining handler as before; from then on, until every answer is written, reads are the
/// pipelining handler's to hold. So no more is ever buffered than one read's worth, as without it.
final class ReadWhileAnswering: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests read to their end whose answers have not ended.
    private var unanswered = 0
    /// A part of another request came while one was unanswered.
    private var pipelined = false
    /// Answers that ended before their requests did (a refusal of a body): those requests' ends
    /// are already answered.
    private var answeredEarly = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.unanswered > 0 { self.pipelined = true }
        if case .end = self.unwrapInboundIn(data) {
            if self.answeredEarly > 0 {
                self.answeredEarly -= 1
            } else {
                self.unanswered += 1
            }
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if self.unanswered == 1 && !self.pipelined { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) {
            if self.unanswered == 0 {
                self.answeredEarly += 1
            } else {
                self.unanswered -= 1
                if self.unanswered == 0 { self.pipelined = false }
            }
        }
        context.write(data, promise: promise)
    }
}
