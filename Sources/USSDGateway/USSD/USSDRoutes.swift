import AfricasTalking
import Foundation
import Hummingbird
import Logging
import Menus
import NIOCore
import Wallet

/// The request context of the gateway: Hummingbird's, plus the peer address for the callback
/// source allowlist.
public struct GatewayRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// Keys sealed with the server-side pepper: deterministic, so a PIN typed twice (or a hop's `text`)
/// can be compared without keeping it.
public struct PepperSealer: SecretSealer {
    let pins: PINHasher
    public init(pins: PINHasher) { self.pins = pins }
    public func seal(_ secret: String) -> String { self.pins.seal(secret) }
}

/// A malformed callback: answered 400, with the reason logged (never the body, never echoed).
struct BadCallback: Error, HTTPResponseError {
    let reason: String
    var status: HTTPResponse.Status { .badRequest }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "bad request\n")))
    }
}

/// Africa's Talking's USSD routes: `POST /ussd/africastalking` (a hop) and
/// `POST /ussd/africastalking/events` (end of session), each with the callback token as one more
/// path segment when one is configured.
struct USSDRoutes {
    let service: USSDService
    let guardian: CallbackGuard
    let logger: Logger
    static let maximumBody = 64 * 1024

    func register(on router: Router<GatewayRequestContext>) {
        let hop = self.guardian.paths("/ussd/africastalking")
        let events = self.guardian.paths("/ussd/africastalking/events")
        router.post(hop) { request, context in try await self.hop(request, context) }
        router.post(events) { request, context in try await self.event(request, context) }
    }

    func hop(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let hop: USSDHop
        do {
            hop = try Self.decodeHop(try await self.form(request, context))
        } catch let error as MalformedCallback {
            throw self.bad(error.description, context)
        }
        switch await self.service.handle(hop) {
        case .reply(let reply):
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: reply)))
        case .refused(let reason):
            throw self.bad(reason, context)
        }
    }

    func event(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let event: AfricasTalkingUSSDEvent
        let msisdn: MSISDN
        do {
            event = try AfricasTalkingUSSDEvent(form: try await self.form(request, context))
            msisdn = try Self.msisdn(event.phoneNumber)
        } catch let error as MalformedCallback {
            throw self.bad(error.description, context)
        }
        try await self.service.sessionEnded(sessionId: event.sessionID, msisdn: msisdn, status: event.status)
        return Response(status: .ok)
    }

    /// The urlencoded body, at most 64 KiB (413 beyond).
    func form(_ request: Request, _ context: GatewayRequestContext) async throws -> [String: String] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maximumBody)
        } catch {
            context.logger.warning("callback over 64 KiB")
            throw HTTPError(.contentTooLarge)
        }
        return try FormFields.parse(buffer.readableBytesView)
    }

    private func bad(_ reason: String, _ context: GatewayRequestContext) -> BadCallback {
        context.logger.warning("malformed callback", metadata: ["reason": .string(reason)])
        return BadCallback(reason: reason)
    }

    static func decodeHop(_ form: [String: String]) throws(MalformedCallback) -> USSDHop {
        let hop = try AfricasTalkingUSSDHop(form: form)
        return USSDHop(sessionId: hop.sessionID, msisdn: try Self.msisdn(hop.phoneNumber), serviceCode: hop.serviceCode, text: hop.text)
    }

    /// A number the deployment serves (a Kenyan mobile number), from Africa's Talking's `+2547...`.
    static func msisdn(_ phone: String) throws(MalformedCallback) -> MSISDN {
        guard let msisdn = Validator.normaliseMSISDN(phone).flatMap(MSISDN.init) else {
            throw MalformedCallback("phoneNumber is not a Kenyan mobile number")
        }
        return msisdn
    }
}
