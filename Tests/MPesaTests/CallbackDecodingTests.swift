import Basics
import MPesa
import Testing

/// The edge decoders on their own: what a hostile caller can put in a field is refused before any
/// of it is used (the fuzz targets in Fuzz/ drive the same decoders with random bytes).
@Suite struct DarajaDecodingTests {
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
