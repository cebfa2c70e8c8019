import AfricasTalking
import Basics
import Testing
import USSDDialects

/// Each dialect decodes the examples its documentation gives (`docs/reference/aggregators.md`)
/// into the canonical hop, and renders replies the way that documentation expects them.
@Suite struct DialectContractTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func hubtelInitiationResponseAndReleaseInEitherCasing() throws {
        let first = try HubtelHop(
            body: Self.bytes(
                #"{"Type": "Initiation", "Mobile": "233241234567", "SessionId": "a1b2c3", "ServiceCode": "713", "Message": "*713*1#", "Operator": "mtn", "Sequence": 1, "ClientState": "", "Platform": "USSD"}"#
            )
        )
        #expect(first.canonical == CanonicalHop(provider: .hubtel, sessionID: "a1b2c3", phone: "233241234567", serviceCode: "713", dial: "*713*1#", input: "", phase: .begin, network: "mtn", sequence: 1))
        let next = try HubtelHop(body: Self.bytes(#"{"Type": "response", "Mobile": "233241234567", "SessionId": "a1b2c3", "Message": "2", "Sequence": 2, "ClientState": "s-1"}"#))
        #expect(next.canonical.phase == .continue && next.canonical.input == "2" && next.canonical.dial == nil && next.canonical.sequence == 2)
        #expect(next.render(DialectReply(engine: "CON Enter amount")) == RenderedReply(
            contentType: "application/json", headers: [:], body: #"{"ClientState":"s-1","Message":"Enter amount","Type":"Response"}"#
        ))
        #expect(next.render(DialectReply(engine: "END Sent KES 100.")).body == #"{"ClientState":"s-1","Message":"Sent KES 100.","Type":"Release"}"#)
        #expect(try HubtelHop(body: Self.bytes(#"{"Type": "RELEASE", "Mobile": "233241234567", "SessionId": "a1b2c3"}"#)).canonical.phase == .end)
        #expect(try HubtelHop(body: Self.bytes(#"{"Type": "Timeout", "Mobile": "233241234567", "SessionId": "a1b2c3"}"#)).canonical.phase == .timeout)
    }

    @Test func naloFirstHopCarriesTheDialAndTheReplyEchoesTheRequest() throws {
        let first = try NaloHop(
            body: Self.bytes(#"{"USERID": "NALOTest", "MSISDN": "233265551234", "USERDATA": "*920*1#", "MSGTYPE": true, "NETWORK": "MTN", "SESSIONID": "16590115252429751"}"#)
        )
        #expect(first.canonical == CanonicalHop(provider: .nalo, sessionID: "16590115252429751", phone: "233265551234", dial: "*920*1#", input: "", phase: .begin, network: "MTN"))
        let next = try NaloHop(body: Self.bytes(#"{"USERID": "NALOTest", "MSISDN": "233265551234", "USERDATA": "4", "MSGTYPE": false, "NETWORK": "MTN", "SESSIONID": "16590115252429751"}"#))
        #expect(next.canonical.phase == .continue && next.canonical.input == "4")
        #expect(next.render(DialectReply(engine: "CON Enter phone number")).body
            == #"{"MSG":"Enter phone number","MSGTYPE":true,"MSISDN":"233265551234","USERDATA":"4","USERID":"NALOTest"}"#)
        #expect(next.render(DialectReply(engine: "END Done")).body.contains(#""MSGTYPE":false"#))
    }

    @Test func arkeselNewSessionAndContinueSession() throws {
        let first = try ArkeselHop(
            body: Self.bytes(#"{"sessionID": "ark-0001", "userID": "ARKESEL", "newSession": true, "msisdn": "233544919953", "userData": "*928*1#", "network": "MTN"}"#)
        )
        #expect(first.canonical == CanonicalHop(provider: .arkesel, sessionID: "ark-0001", phone: "233544919953", dial: "*928*1#", input: "", phase: .begin, network: "MTN"))
        #expect(first.render(DialectReply(engine: "CON Welcome")).body
            == #"{"continueSession":true,"message":"Welcome","msisdn":"233544919953","sessionID":"ark-0001","userID":"ARKESEL"}"#)
        let last = try ArkeselHop(body: Self.bytes(#"{"sessionID": "ark-0001", "userID": "ARKESEL", "newSession": false, "msisdn": "233544919953", "userData": "1"}"#))
        #expect(last.canonical.phase == .continue && last.canonical.input == "1")
        #expect(last.render(DialectReply(engine: "END Bye")).body.contains(#""continueSession":false"#))
    }

    @Test func flaresPullTakesTheDialFirstAndAnswersWithFreeflow() throws {
        let hop = try FlaresHop(query: ["SessionID": "7734561", "MSISDN": "254733123456", "MSC": "Airtel", "input": "384961"])
        #expect(hop.canonical.phase == .continue && hop.canonical.input == "384961")
        #expect(hop.asFirst == CanonicalHop(provider: .flares, sessionID: "7734561", phone: "254733123456", dial: "384961", input: "", phase: .begin, network: "Airtel"))
        #expect(hop.render(DialectReply(engine: "CON Welcome\n1. Balance")) == RenderedReply(
            contentType: "text/plain; charset=utf-8", headers: ["Freeflow": "FC", "charge": "N", "amount": "0"], body: "Welcome\n1. Balance"
        ))
        #expect(hop.render(DialectReply(engine: "END Bye")).headers["Freeflow"] == "FB")
        #expect(try FlaresHop(query: ["SessionID": "7734561", "MSISDN": "254733123456", "clean": "clean-session"]).canonical.phase == .end)
        #expect(try FlaresHop(query: ["SessionID": "7734561", "MSISDN": "254733123456", "clean": "clean-session", "error": "timeout"]).canonical.phase == .timeout)
    }

    @Test func africasTalkingKeepsItsWholePath() throws {
        let hop = try AfricasTalkingUSSDHop(form: ["sessionId": "ATUid_1", "phoneNumber": "+254712345678", "serviceCode": "*384*96#", "text": "4*0712345678*100", "networkCode": "63902"])
        #expect(hop.canonical == CanonicalHop(
            provider: .africastalking, sessionID: "ATUid_1", phone: "254712345678", serviceCode: "*384*96#", path: "4*0712345678*100", input: "100", phase: .continue, network: "63902"
        ))
        let dial = try AfricasTalkingUSSDHop(form: ["sessionId": "ATUid_1", "phoneNumber": "+254712345678", "serviceCode": "*384*96#", "text": ""]).canonical
        #expect(dial.phase == .begin && dial.dial == "*384*96#" && dial.input == "")
        #expect(AfricasTalkingUSSDHop.render(DialectReply(engine: "END Bye")).body == "END Bye")
    }

    @Test func hostileBodiesAreRefusedWithTheFieldNamedNeverItsValue() {
        let cases: [(String, String)] = [
            (#"[1, 2]"#, "body is not a JSON object"),
            (#"{"Type": "Hello", "Mobile": "233241234567", "SessionId": "a"}"#, "Type missing or not Initiation, Response, Release or Timeout"),
            (#"{"Type": "Response", "Mobile": "233241234567", "SessionId": "a:b", "Message": "1"}"#, "SessionId missing or malformed"),
            (#"{"Type": "Response", "Mobile": "12", "SessionId": "a", "Message": "1"}"#, "Mobile missing or malformed"),
            (#"{"Type": "Response", "Mobile": "233241234567", "SessionId": "a", "Message": "1\u0000"}"#, "body is not JSON within limits: a control character in a string"),
            (#"{"Type": "Response", "Mobile": "233241234567", "SessionId": "a", "Message": ""# + String(repeating: "9", count: 600) + #""}"#, "Message too long or with control characters"),
            (#"{"Type": "Response", "Mobile": "233241234567", "SessionId": "a", "Message": "1", "Sequence": -3}"#, "Sequence malformed"),
        ]
        for (body, reason) in cases {
            #expect(throws: MalformedCallback(reason), "\(reason)") { try HubtelHop(body: Self.bytes(body)) }
        }
        #expect(throws: MalformedCallback("MSGTYPE missing or not a boolean")) {
            try NaloHop(body: Self.bytes(#"{"USERID": "x", "MSISDN": "233265551234", "USERDATA": "1", "SESSIONID": "s"}"#))
        }
        #expect(throws: MalformedCallback("input missing")) { try FlaresHop(query: ["SessionID": "1", "MSISDN": "254733123456"]) }
    }
}
