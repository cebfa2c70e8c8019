import AfricasTalking
import Basics
import USSDDialects

/// Every other aggregator's USSD dialect: the bytes as a Hubtel, Nalo and Arkesel JSON body, and
/// as a Flares query (parsed as a form). Beyond "never traps", what a decoder accepts must keep the
/// canonical hop's promises, and its reply must render.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var hops: [CanonicalHop] = []
    if let hop = try? HubtelHop(body: bytes) {
        hops.append(hop.canonical)
        _ = hop.render(DialectReply(engine: "CON x"))
    }
    if let hop = try? NaloHop(body: bytes) {
        hops.append(hop.canonical)
        _ = hop.render(DialectReply(engine: "END x"))
    }
    if let hop = try? ArkeselHop(body: bytes) {
        hops.append(hop.canonical)
        _ = hop.render(DialectReply(engine: "CON x"))
    }
    if let form = try? bytes.withUnsafeBufferPointer({ try FormFields.parse($0) }), let hop = try? FlaresHop(query: form) {
        hops.append(hop.canonical)
        hops.append(hop.asFirst)
        _ = hop.render(DialectReply(engine: "END x"))
    }
    for hop in hops {
        precondition(CallbackField.isIdentifier(hop.sessionID), "a session id outside [A-Za-z0-9_-]{1,64}")
        precondition((7...15).contains(hop.phone.utf8.count) && hop.phone.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }, "a phone that is not 7 to 15 digits")
        for text in [hop.input, hop.dial ?? ""] {
            precondition(text.utf8.count <= 512 && !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "input unbounded")
        }
        precondition(hop.phase != .begin || hop.input.isEmpty, "a first hop with an input besides its dial")
    }
    return 0
}
