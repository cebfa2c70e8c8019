import AfricasTalking
import Basics
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import MPesa
@testable import MPesaGateway
@testable import SMSChannel
import Testing
@testable import USSDChannel

/// The edge decoders on their own: what a hostile caller can put in a field is refused before any
/// of it is used (the fuzz targets in Fuzz/ drive the same decoders with random bytes).
@Suite struct CallbackDecodingTests {
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

    @Test func absurdAmountsAreOutOfRangeNeverATrap() throws {
        func amount(_ json: String) throws -> Int64?? {
            let body = #"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_1","ResultCode":0,"ResultDesc":"ok","CallbackMetadata":{"Item":[{"Name":"Amount","Value":\#(json)},{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"PhoneNumber","Value":254708374149}]}}}}"#
            return try STKCallback(json: Array(body.utf8)).paid.map(\.shillings)
        }
        #expect(try amount("1.00") == .some(1))
        #expect(try amount("\"250000\"") == .some(250_000))
        for outOfRange in ["100000000000000000", "\"92233720368547758\"", "\"9223372036854775807000\"", "1e300", "-5", "0", "1.5", "\"-1\"", "\"1.50\"", "250001", "123456789012345678901234567890"] {
            #expect(try amount(outOfRange) == .some(nil), "\(outOfRange)")
        }
        for malformed in ["true", "null", "{}", "[1]", "\"ten\"", "\"1e3\"", "\"\""] {
            #expect(throws: DarajaCallbackMalformed.self, "\(malformed)") { try amount(malformed) }
        }
    }

    @Test func controlCharactersDeepNestingAndWrongTypesAreMalformed() {
        let bodies = [
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":"a\u0000b"}}"#,
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":"ok","ResultDesc":"x\u0000"}}"#,
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":"ok","Extra":{"k\u0001":1}}}"#,
            #"{"Result":{"ResultCode":"zero","OriginatorConversationID":"ok"}}"#,
            #"{"Result":{"ResultCode":1.5,"OriginatorConversationID":"ok"}}"#,
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":123}}"#,
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":"ok","ResultParameters":{"ResultParameter":[{"Key":"TransactionReceipt","Value":"SG 1"}]}}}"#,
            #"{"Result":{"ResultCode":0,"OriginatorConversationID":"\#(String(repeating: "a", count: 129))"}}"#,
            #"{"Result":\#(String(repeating: "[", count: 40))1\#(String(repeating: "]", count: 40))}"#,
            #"{"Result":[]}"#,
            "",
        ]
        for body in bodies {
            #expect(throws: DarajaCallbackMalformed.self, "\(body.prefix(80))") { try B2CResult(json: Array(body.utf8)) }
        }
    }

    @Test func aWholeResultCodeOutOfRangeIsKeptForReviewNotRefused() throws {
        for code in ["99999999999", "-1", "\"-5\"", "1e300", "\"123456789012345678901234567890\""] {
            let result = try B2CResult(json: Array(#"{"Result":{"ResultCode":\#(code),"OriginatorConversationID":"ok"}}"#.utf8))
            #expect(result.outOfRange == "ResultCode", "\(code)")
            let stk = try STKCallback(json: Array(#"{"Body":{"stkCallback":{"CheckoutRequestID":"ws_CO_1","ResultCode":\#(code)}}}"#.utf8))
            #expect(stk.outOfRange == "ResultCode" && stk.paid == nil, "\(code)")
        }
        #expect(try B2CResult(json: Array(#"{"Result":{"ResultCode":"2001","OriginatorConversationID":"ok"}}"#.utf8)).resultCode == 2001)
    }

    @Test func storedBodiesAreCanonicalJSON() throws {
        let body = "\u{FEFF}" + #"{"Result":{"ResultCode":0,"OriginatorConversationID":"ok","B":"é\"\\","A":1.5,"A":2}}"#
        if let result = try? B2CResult(json: Array(body.utf8)) {
            #expect(!result.raw.hasPrefix("\u{FEFF}"))
            #expect(result.raw.contains(#""B":"é\"\\""#))
        }
        let plain = try B2CResult(json: Array(#"{"Result":{"OriginatorConversationID":"ok","ResultCode":0}}"#.utf8))
        #expect(plain.raw == #"{"Result":{"OriginatorConversationID":"ok","ResultCode":0}}"#)
    }

    /// Transaction Status answers as Daraja's portal documents them: the status, receipt, amount
    /// and parties read from `ResultParameters`; a result code spelt as a name is never a success.
    @Test func transactionStatusAnswersReadTheirStatusAmountAndParties() throws {
        let documented = #"{"Result":{"ConversationID":"AG_20180223_0000493344ae97d86f75","OriginatorConversationID":"3213-416199-2","ReferenceData":{"ReferenceItem":{"Key":"Occasion"}},"ResultCode":0,"ResultDesc":"The service request is processed successfully.","ResultParameters":{"ResultParameter":[{"Key":"DebitPartyName","Value":"600310 - Safaricom333"},{"Key":"DebitPartyName","Value":"254708374149 - John Doe"},{"Key":"OriginatorConversationID","Value":"3211-416020-3"},{"Key":"InitiatedTime","Value":"20180223054112"},{"Key":"DebitAccountType","Value":"Utility Account"},{"Key":"DebitPartyCharges","Value":"Fee For B2C Payment|KES|22.40"},{"Key":"TransactionReason"},{"Key":"ReasonType","Value":"Business Payment to Customer via API"},{"Key":"TransactionStatus","Value":"Completed"},{"Key":"FinalisedTime","Value":"20180223054112"},{"Key":"Amount","Value":"300"},{"Key":"ConversationID","Value":"AG_20180223_000041b09c22e613d6c9"},{"Key":"ReceiptNo","Value":"MBN31H462N"}]},"ResultType":0,"TransactionID":"MBN0000000"}}"#
        let result = try B2CResult(json: Array(documented.utf8))
        #expect(result.succeeded && result.conversationID == "AG_20180223_0000493344ae97d86f75")
        let answer = try TransactionStatusAnswer(result)
        #expect(answer.status == "completed" && answer.receipt == "MBN31H462N" && answer.cents == 30_000)
        #expect(answer.debitParty == "600310", "the first of a repeated key counts")
        #expect(answer.creditParty == nil)

        func decoded(_ parameters: String, code: String = "0") throws -> TransactionStatusAnswer {
            try TransactionStatusAnswer(B2CResult(json: Array(#"{"Result":{"ResultCode":\#(code),"OriginatorConversationID":"TS1","ConversationID":"AG_1","ResultParameters":{"ResultParameter":[\#(parameters)]}}}"#.utf8)))
        }
        #expect(try decoded(#"{"Key":"Amount","Value":300.5}"#).cents == 30_050)
        #expect(try decoded(#"{"Key":"Amount","Value":"300.50"}"#).cents == 30_050)
        #expect(try decoded(#"{"Key":"Amount","Value":"0"}"#).cents == nil, "no amount is not an amount")
        #expect(try decoded(#"{"Key":"Amount","Value":"100000000001"}"#).cents == nil, "beyond a billion shillings")
        #expect(try decoded(#"{"Key":"Amount","Value":"1.005"}"#).cents == nil, "not exact")
        #expect(try decoded(#"{"Key":"CreditPartyName","Value":"174379 - Wallet Ltd"}"#).creditParty == "174379")
        #expect(try decoded(#"{"Key":"CreditPartyName","Value":"1743790"}"#).creditParty == "1743790")
        #expect(try decoded(#"{"Key":"CreditPartyName","Value":"Wallet 174379"}"#).creditParty == nil, "the party leads the name")
        #expect(try decoded(#"{"Key":"CreditPartyName","Value":"1743 - short"}"#).creditParty == nil)
        #expect(try decoded(#"{"Key":"TransactionStatus","Value":"Pending Authorized"}"#).status == "pending authorized")
        for malformed in [#"{"Key":"Amount","Value":"ten"}"#, #"{"Key":"Amount","Value":true}"#, #"{"Key":"CreditPartyName","Value":[1]}"#, #"{"Key":"TransactionStatus","Value":"   "}"#] {
            #expect(throws: DarajaCallbackMalformed.self, "\(malformed)") { try decoded(malformed) }
        }

        let named = try B2CResult(json: Array(#"{"Result":{"ResultType":0,"ResultCode":"SFC_IC0003","ResultDesc":"Receiver party is invalid","OriginatorConversationID":"TS2","ConversationID":"AG_2","TransactionID":"TK61000000"}}"#.utf8))
        #expect(!named.succeeded && named.resultCodeName == "SFC_IC0003" && named.resultCodeText == "SFC_IC0003" && named.outOfRange == "ResultCode")
        for malformed in [#""SFC IC0003""#, #""sfc_ic0003""#, #""FAILED""#] {
            #expect(throws: DarajaCallbackMalformed.self) { try B2CResult(json: Array(#"{"Result":{"ResultCode":\#(malformed),"OriginatorConversationID":"TS3"}}"#.utf8)) }
        }
    }
}
