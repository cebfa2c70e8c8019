import AfricasTalking
import Basics
import Menus

/// Africa's Talking's form callbacks (and the same bytes as a URL query): the urlencoded parser, then the USSD hop, end-of-session,
/// inbound SMS and delivery report decoders on the same fields, then the phone number normaliser.
/// Beyond "never traps", what a decoder accepts must keep the promises the gateway relies on.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // The same bytes as a URL's query (Flares): read leniently, never refused; a query without an
    // escape keeps its bytes as they are.
    let query = FormFields.query(Substring(String(decoding: bytes, as: UTF8.self)))
    if !bytes.contains(UInt8(ascii: "%")), let strict = try? FormFields.parse(bytes, plusIsSpace: false) {
        precondition(strict == query, "the lenient query reader differs from the form parser on a query without escapes")
    }
    guard let form = try? FormFields.parse(bytes) else { return 0 }
    if let hop = try? AfricasTalkingUSSDHop(form: form) {
        precondition(CallbackField.isIdentifier(hop.sessionID), "a session id outside [A-Za-z0-9_-]{1,64}")
        precondition(hop.text.utf8.count <= AfricasTalkingUSSDHop.maximumText && !hop.text.unicodeScalars.contains { $0.value < 0x20 }, "text unbounded")
        precondition(hop.phoneNumber.utf8.count <= 16, "phone unbounded")
        if let msisdn = MSISDN(parsing: hop.phoneNumber, plan: everyCountry)?.value {
            let shaped = everyCountry.countries.contains { msisdn.hasPrefix($0.code) && msisdn.utf8.count == 3 + $0.nationalLength }
            precondition(shaped, "a normalised number of the wrong shape")
        }
    }
    if let event = try? AfricasTalkingUSSDEvent(form: form) {
        precondition(CallbackField.isIdentifier(event.sessionID), "an event's session id unchecked")
        precondition(event.hopsMetadata.allSatisfy { AfricasTalkingUSSDEvent.isMarker($0[...]) }, "a hop marker the gateway could not have sent")
    }
    if let sms = try? AfricasTalkingInboundSMS(form: form) {
        precondition(!sms.text.unicodeScalars.contains { $0.value == 0 }, "NUL in an SMS text")
        precondition(CallbackField.isIdentifier(sms.id, maxLength: 100), "an SMS id unchecked")
    }
    if let report = try? AfricasTalkingDeliveryReport(form: form) {
        precondition(report.known.map { $0.rawValue == report.status } ?? true, "a status label that is not the status")
    }
    _ = MSISDN(parsing: form["phoneNumber"] ?? "", plan: everyCountry)
    return 0
}

/// Every numbering plan the gateway knows, so the parser's every branch is reached.
let everyCountry = NumberingPlan(countries: MSISDN.Country.allCases)!
