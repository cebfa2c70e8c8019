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
        let form = try await self.form(request, context)
        let hop: USSDHop
        do {
            hop = try Self.decodeHop(form)
        } catch let error as BadCallback {
            throw self.bad(error.reason, context)
        }
        let reply = await self.service.handle(hop)
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: reply)))
    }

    func event(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try self.guardian.check(request, context)
        let form = try await self.form(request, context)
        guard let sessionId = form["sessionId"], Self.isSessionID(sessionId) else { throw self.bad("sessionId missing or malformed", context) }
        guard let phone = form["phoneNumber"], let msisdn = Validator.normaliseMSISDN(phone).flatMap(MSISDN.init) else {
            throw self.bad("phoneNumber missing or not a Kenyan mobile number", context)
        }
        guard let status = form["status"], !status.isEmpty, status.count <= 32 else { throw self.bad("status missing", context) }
        try await self.service.sessionEnded(sessionId: sessionId, msisdn: msisdn, status: status)
        return Response(status: .ok)
    }

    /// The urlencoded body, at most 64 KiB (413 beyond).
    func form(_ request: Request, _ context: GatewayRequestContext) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: Self.maximumBody)
        guard let body = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes) else { throw self.bad("body is not text", context) }
        do {
            return try Self.parseForm(body)
        } catch {
            throw self.bad("body is not a urlencoded form", context)
        }
    }

    private func bad(_ reason: String, _ context: GatewayRequestContext) -> BadCallback {
        context.logger.warning("malformed callback", metadata: ["reason": .string(reason)])
        return BadCallback(reason: reason)
    }

    /// `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte; a repeated field keeps its
    /// first value. Works on the bytes (this runs on every hop); a bad escape or invalid UTF-8 is
    /// an error.
    static func parseForm(_ body: String) throws -> [String: String] {
        var fields: [String: String] = [:]
        var body = body
        try body.withUTF8 { bytes in
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
                if end > start {
                    var equals = start
                    while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                    let name = try Self.unescape(bytes[start..<equals])
                    let value = equals < end ? try Self.unescape(bytes[(equals + 1)..<end]) : ""
                    if fields[name] == nil { fields[name] = value }
                }
                start = end + 1
            }
        }
        return fields
    }

    private static func unescape(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) throws -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                output.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = Self.hex(bytes[index + 1]), let low = Self.hex(bytes[index + 2]) else {
                    throw BadCallback(reason: "form")
                }
                output.append(high << 4 | low)
                index += 2
            } else {
                output.append(byte)
            }
            index += 1
        }
        guard let text = String(validating: output, as: UTF8.self) else { throw BadCallback(reason: "form") }
        return text
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static func decodeHop(_ form: [String: String]) throws -> USSDHop {
        guard let sessionId = form["sessionId"], Self.isSessionID(sessionId) else { throw BadCallback(reason: "sessionId missing or malformed") }
        guard let phone = form["phoneNumber"], let msisdn = Validator.normaliseMSISDN(phone).flatMap(MSISDN.init) else {
            throw BadCallback(reason: "phoneNumber missing or not a Kenyan mobile number")
        }
        guard let code = form["serviceCode"], (1...32).contains(code.count) else { throw BadCallback(reason: "serviceCode missing") }
        guard let text = form["text"], text.utf8.count <= 4096 else { throw BadCallback(reason: "text missing or too long") }
        return USSDHop(sessionId: sessionId, msisdn: msisdn, serviceCode: code, text: text)
    }

    /// Session ids land in Redis keys and logs: printable, no spaces, at most 128 characters.
    static func isSessionID(_ value: String) -> Bool {
        (1...128).contains(value.utf8.count) && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
