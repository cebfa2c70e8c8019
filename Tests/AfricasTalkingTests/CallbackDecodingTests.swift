import AfricasTalking
import Basics
import Testing

/// The edge decoders on their own: what a hostile caller can put in a field is refused before any
/// of it is used (the fuzz targets in Fuzz/ drive the same decoders with random bytes).
@Suite struct AfricasTalkingDecodingTests {
    @Test func urlencodedFormsDecodeLikeTheAggregatorEncodes() throws {
        let form = try FormFields.parse(Array("a=1&b=x+y%2Az&c=&a=2&d&&serviceCode=%2A384%2A96%23&name=Zo%C3%AB".utf8))
        #expect(form == ["a": "1", "b": "x y*z", "c": "", "d": "", "serviceCode": "*384*96#", "name": "Zoë"])
        for bad in ["a=%ZZ", "a=%4", "a=%", "a=%FF"] {
            #expect(throws: MalformedCallback.self, "\(bad)") { try FormFields.parse(Array(bad.utf8)) }
        }
        #expect(try FormFields.parse([]) == [:])
    }

    @Test func ussdHopFieldsAreBoundedAndClean() throws {
        let good = ["sessionId": "ATUid_0a1b-2C", "phoneNumber": " 254712345678", "serviceCode": "*384*96#", "text": "1*0712 345 678*500", "networkCode": "63902"]
        let hop = try AfricasTalkingUSSDHop(form: good)
        #expect(hop.phoneNumber == "+254712345678" && hop.text == "1*0712 345 678*500")
        let bad: [(String, String)] = [
            ("sessionId", "ATUid:1"), ("sessionId", String(repeating: "a", count: 65)), ("sessionId", "a b"), ("sessionId", ""),
            ("phoneNumber", "+2547abc"), ("phoneNumber", "12"), ("phoneNumber", String(repeating: "1", count: 21)),
            ("serviceCode", "*384 96#"), ("text", "1\u{0}2"), ("text", "1\u{7}"), ("text", String(repeating: "1", count: 4097)),
            ("networkCode", "639\u{0}02"),
        ]
        for (field, value) in bad {
            var form = good
            form[field] = value
            #expect(throws: MalformedCallback.self, "\(field)") { try AfricasTalkingUSSDHop(form: form) }
        }
    }

    @Test func smsAndEventFieldsAreBoundedAndClean() throws {
        let sms = try AfricasTalkingInboundSMS(form: ["id": "9a0b-cc_1", "from": "+254712345678", "text": "SEND 0712345678 500 1234\n"])
        #expect(sms.from == "+254712345678")
        #expect(throws: MalformedCallback.self) { try AfricasTalkingInboundSMS(form: ["id": "sms:1", "from": "+254712345678", "text": "BAL"]) }
        #expect(throws: MalformedCallback.self) { try AfricasTalkingInboundSMS(form: ["id": "1", "from": "+254712345678", "text": "BAL\u{0}1234"]) }
        #expect(throws: MalformedCallback.self) { try AfricasTalkingInboundSMS(form: ["id": "1", "from": "+254712345678", "text": String(repeating: "x", count: 1601)]) }
        let report = try AfricasTalkingDeliveryReport(form: ["id": "ATXid_1", "status": "Teleported"])
        #expect(report.known == nil, "an undocumented status is kept but never a metric label")
        #expect(throws: MalformedCallback.self) { try AfricasTalkingDeliveryReport(form: ["id": "ATXid_1", "status": "Failed", "failureReason": "x\u{0}"]) }
        #expect(try AfricasTalkingUSSDEvent(form: ["sessionId": "s1", "phoneNumber": "+254712345678", "status": "Exploded"]).status == .other)
    }
}
