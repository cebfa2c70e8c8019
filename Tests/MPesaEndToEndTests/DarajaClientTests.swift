import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import MPesa
@testable import MPesaGateway
@testable import SMSChannel
import Testing
@testable import USSDChannel

/// The Daraja client against the strict fake: request shapes, the token's life, typed errors,
/// validation before anything leaves.
@Suite struct DarajaClientTests {
    static let gateway = "https://gateway.example.com"

    func withClient(_ adjust: (inout DarajaConfiguration) -> Void = { _ in }, _ body: (DarajaClient, FakeDaraja) async throws -> Void) async throws {
        let fake = try await FakeDaraja.start()
        let http = CurlClient()
        var configuration = fake.configuration(gateway: Self.gateway)
        adjust(&configuration)
        let client = DarajaClient(configuration: configuration, http: http)
        do {
            try await body(client, fake)
        } catch {
            await http.shutdown()
            await fake.stop()
            throw error
        }
        await http.shutdown()
        await fake.stop()
    }

    @Test func stkPushAndQueryFollowTheReferenceAndShareOneToken() async throws {
        try await self.withClient { client, fake in
            let accepted = try await client.stkPush(phone: "254708374149", shillings: 100, accountReference: "Wallet", description: "Deposit")
            #expect(accepted.checkoutRequestID.hasPrefix("ws_CO_"))
            #expect(try await client.stkQuery(checkoutRequestID: accepted.checkoutRequestID) == .pending, "'being processed' is pending, not an error")
            fake.state.withLock { $0.query = .failed(1032, "Request cancelled by user") }
            #expect(try await client.stkQuery(checkoutRequestID: accepted.checkoutRequestID) == .failed(code: 1032, text: "Request cancelled by user"))
            fake.state.withLock { $0.query = .paid }
            #expect(try await client.stkQuery(checkoutRequestID: accepted.checkoutRequestID) == .paid)
            #expect(fake.violations.isEmpty, "\(fake.violations)")
            #expect(fake.tokensIssued == 1, "one token serves every call until it nears expiry")
            let push = try #require(fake.requests("/mpesa/stkpush/v1/processrequest").first)
            #expect(push.json["Amount"] == .integer(100))
            #expect(push.json["CallBackURL"]?.string == Self.gateway + "/mpesa/stk/callback")
        }
    }

    @Test func b2cAndTransactionStatusFollowTheReference() async throws {
        try await self.withClient { client, fake in
            let acknowledged = try await client.b2c(originatorConversationID: "payout-1", phone: "254708374149", shillings: 10, remarks: "Wallet withdrawal")
            #expect(acknowledged.conversationID.hasPrefix("AG_") && acknowledged.originatorConversationID == "payout-1")
            #expect(fake.conversationID(of: "payout-1") == acknowledged.conversationID)
            let payoutQuery = StatusQueryID.random()
            let asked = try await client.transactionStatus(.payout(originalConversationID: "payout-1"), queryID: payoutQuery)
            #expect(asked.originatorConversationID == payoutQuery && asked.conversationID == fake.statusQueries.first?.conversationID)
            let receiptQuery = StatusQueryID.random()
            _ = try await client.transactionStatus(.paybill(transID: "RKTQDM7W6S"), queryID: receiptQuery)
            #expect(fake.violations.isEmpty, "\(fake.violations)")
            let b2c = try #require(fake.requests("/mpesa/b2c/v3/paymentrequest").first)
            #expect(b2c.json["OriginatorConversationID"]?.string == "payout-1")
            #expect(b2c.json["Amount"]?.string == "10")
            let status = fake.requests("/mpesa/transactionstatus/v1/query")
            #expect(status.count == 2)
            // A payout is asked about by the B2C initiator, with the B2C shortcode as the party...
            #expect(status[0].json["OriginalConversationID"]?.string == "payout-1" && status[0].json["TransactionID"] == nil)
            #expect(status[0].json["PartyA"]?.string == FakeDaraja.b2cShortcode && status[0].json["Initiator"]?.string == "testapi")
            #expect(status[0].json["OriginatorConversationID"]?.string == payoutQuery)
            // ...a paybill receipt by the paybill's own initiator, with the paybill as the party.
            #expect(status[1].json["TransactionID"]?.string == "RKTQDM7W6S" && status[1].json["OriginalConversationID"] == nil)
            #expect(status[1].json["PartyA"]?.string == FakeDaraja.shortcode && status[1].json["Initiator"]?.string == FakeDaraja.c2bInitiator)
            #expect(status[1].json["SecurityCredential"]?.string == FakeDaraja.c2bCredential && status[1].json["IdentifierType"]?.string == "4")
        }
    }

    @Test func statusQueryIDsAreRandomAndShapedForDaraja() {
        let ids = (0..<1_000).map { _ in StatusQueryID.random() }
        #expect(Set(ids).count == ids.count, "no repeats")
        for id in ids {
            #expect(id.count == 34 && id.hasPrefix("TS") && id.dropFirst(2).allSatisfy { $0.isHexDigit && !$0.isUppercase })
        }
        // 128 bits each: across 1,000 ids every hex digit shows up in every position.
        for position in 2..<34 {
            let digits = Set(ids.map { Array($0)[position] })
            #expect(digits.count == 16, "position \(position) holds \(digits.count) digits")
        }
    }

    @Test func aPaybillQueryWithoutItsOwnInitiatorUsesTheB2COnes() async throws {
        try await self.withClient({ $0.c2bInitiatorName = nil; $0.c2bSecurityCredential = nil }) { client, fake in
            #expect(client.configuration.paybillInitiator == ("testapi", "c2VjcmV0LWNyZWRlbnRpYWw="))
            // The strict fake knows this paybill has an initiator of its own, and refuses the B2C one.
            await #expect(throws: DarajaError.self) {
                _ = try await client.transactionStatus(.paybill(transID: "RKTQDM7W6S"), queryID: StatusQueryID.random())
            }
            #expect(fake.violations == ["Initiator is not the paybill's initiator"], "\(fake.violations)")
        }
    }

    @Test func concurrentCallersWaitForOneRefresh() async throws {
        try await self.withClient { client, fake in
            try await withThrowingTaskGroup(of: DarajaClient.STKStatus.self) { group in
                for _ in 0..<12 { group.addTask { try await client.stkQuery(checkoutRequestID: "ws_CO_1") } }
                for try await status in group { #expect(status == .pending) }
            }
            #expect(fake.tokensIssued == 1, "twelve concurrent callers, one token fetch")
            #expect(fake.violations.isEmpty, "\(fake.violations)")
        }
    }

    @Test func anInvalidTokenIsRefreshedOnceAndTheCallRetriedOnce() async throws {
        try await self.withClient { client, fake in
            _ = try await client.stkQuery(checkoutRequestID: "ws_CO_1")
            fake.state.withLock { $0.expireTokenOnce = true }
            #expect(try await client.stkQuery(checkoutRequestID: "ws_CO_1") == .pending)
            #expect(fake.tokensIssued == 2)
            #expect(fake.violations.isEmpty, "\(fake.violations)")
        }
    }

    @Test func aTokenNearItsExpiryIsReplacedAndANumericLifetimeIsRead() async throws {
        try await self.withClient { client, fake in
            // 200 s left is inside the 300 s refresh margin: every call fetches a new one.
            fake.state.withLock { $0.expiresIn = .integer(200) }
            _ = try await client.stkQuery(checkoutRequestID: "ws_CO_1")
            _ = try await client.stkQuery(checkoutRequestID: "ws_CO_1")
            #expect(fake.tokensIssued == 2)
            fake.state.withLock { $0.expiresIn = .string("3599") }
            _ = try await client.stkQuery(checkoutRequestID: "ws_CO_1")
            _ = try await client.stkQuery(checkoutRequestID: "ws_CO_1")
            #expect(fake.tokensIssued == 3)
        }
    }

    @Test func daraJaErrorsAreTyped() async throws {
        try await self.withClient { client, fake in
            fake.state.withLock {
                $0.stk = [.error(status: 500, code: "500.003.02", message: "Spike arrest violation")]
                $0.b2c = [.error(status: 500, code: "500.002.1001", message: "Duplicate OriginatorConversationID.")]
            }
            do {
                _ = try await client.stkPush(phone: "254708374149", shillings: 10, accountReference: "Wallet", description: "Deposit")
                Issue.record("a spike arrest must throw")
            } catch let error as DarajaError {
                #expect(error.isBusy)
                #expect(error == .api(status: 500, code: "500.003.02", message: "Spike arrest violation"))
            }
            do {
                _ = try await client.b2c(originatorConversationID: "p-1", phone: "254708374149", shillings: 10, remarks: "Wallet withdrawal")
                Issue.record("a duplicate must throw")
            } catch let error as DarajaError {
                #expect(error.isDuplicateOriginator)
                #expect(!error.outcomeUnknown)
            }
        }
    }

    @Test func aHungCallIsATransportErrorWhoseOutcomeIsUnknown() async throws {
        try await self.withClient({ $0.requestTimeout = .seconds(1) }) { client, fake in
            fake.state.withLock { $0.stk = [.hang] }
            do {
                _ = try await client.stkPush(phone: "254708374149", shillings: 10, accountReference: "Wallet", description: "Deposit")
                Issue.record("a hung call must throw")
            } catch let error as DarajaError {
                guard case .transport(let cause) = error else { Issue.record("expected a transport error, got \(error)"); return }
                #expect(cause.code == .timeout)
                #expect(error.outcomeUnknown, "no answer: query before pushing again")
            }
        }
    }

    @Test func badFieldsAreRefusedBeforeTheyLeave() async throws {
        try await self.withClient { client, fake in
            let refused: [() async throws -> Void] = [
                { _ = try await client.stkPush(phone: "0712345678", shillings: 10, accountReference: "Wallet", description: "Deposit") },
                { _ = try await client.stkPush(phone: "+254712345678", shillings: 10, accountReference: "Wallet", description: "Deposit") },
                { _ = try await client.stkPush(phone: "254812345678", shillings: 10, accountReference: "Wallet", description: "Deposit") },
                { _ = try await client.stkPush(phone: "254712345678", shillings: 0, accountReference: "Wallet", description: "Deposit") },
                { _ = try await client.stkPush(phone: "254712345678", shillings: 250_001, accountReference: "Wallet", description: "Deposit") },
                { _ = try await client.stkPush(phone: "254712345678", shillings: 10, accountReference: "ThirteenChars", description: "Deposit") },
                { _ = try await client.stkPush(phone: "254712345678", shillings: 10, accountReference: "Wallet", description: "FourteenChars!") },
                { _ = try await client.b2c(originatorConversationID: "p", phone: "254712345678", shillings: 9, remarks: "Wallet withdrawal") },
                { _ = try await client.b2c(originatorConversationID: "p", phone: "254712345678", shillings: 10, remarks: "W") },
                { _ = try await client.b2c(originatorConversationID: "p", phone: "254712345678", shillings: 10, remarks: String(repeating: "r", count: 101)) },
            ]
            for (index, call) in refused.enumerated() {
                do {
                    try await call()
                    Issue.record("call \(index) should have been refused")
                } catch let error as DarajaError {
                    guard case .invalidRequest = error else { Issue.record("call \(index): \(error)"); continue }
                }
            }
            #expect(fake.requests("/mpesa/stkpush/v1/processrequest").isEmpty && fake.requests("/mpesa/b2c/v3/paymentrequest").isEmpty)
            #expect(fake.tokensIssued == 0, "nothing left the process")
            // Accepted edges: 2541 numbers, 12-character reference, 13-character description.
            _ = try await client.stkPush(phone: "254110000000", shillings: 250_000, accountReference: "TwelveCharsX", description: "ThirteenChars")
            #expect(fake.violations.isEmpty, "\(fake.violations)")
        }
    }

    @Test func timestampsAreNairobiTime() {
        #expect(DarajaClient.timestamp(Date(timeIntervalSince1970: 0)) == "19700101030000")
        // 2024-12-31 22:30:15 UTC is already the new year in Nairobi.
        #expect(DarajaClient.timestamp(Date(timeIntervalSince1970: 1_735_684_215)) == "20250101013015")
    }

    @Test func callbacksParseTheDocumentedShapes() throws {
        let success = #"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0,"ResultDesc":"The service request is processed successfully.","CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"Balance"},{"Name":"TransactionDate","Value":20191219102115},{"Name":"PhoneNumber","Value":254708374149}]}}}}"#
        let paid = try STKCallback(json: Array(success.utf8))
        #expect(paid.paid?.shillings == 1 && paid.paid?.receipt == "NLJ7RT61SV" && paid.paid?.phone == "254708374149")
        let cancelled = try STKCallback(json: Array(#"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_2","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#.utf8))
        #expect(cancelled.resultCode == 1032 && cancelled.paid == nil)
        #expect(throws: STKCallback.Malformed.self) { try STKCallback(json: Array("{not json".utf8)) }
        #expect(throws: STKCallback.Malformed.self) { try STKCallback(json: Array(#"{"Body":{}}"#.utf8)) }
        #expect(throws: STKCallback.Malformed.self) { try STKCallback(json: Array(#"{"Body":{"stkCallback":{"CheckoutRequestID":"x","ResultCode":0}}}"#.utf8)) }
        let result = try B2CResult(json: Array(#"{"Result":{"ResultType":0,"ResultCode":0,"ResultDesc":"ok","OriginatorConversationID":"p-1","ConversationID":"AG_1","TransactionID":"SG632NMUAB","ResultParameters":{"ResultParameter":[{"Key":"TransactionAmount","Value":10},{"Key":"TransactionReceipt","Value":"SG632NMUAB"},{"Key":"B2CUtilityAccountAvailableFunds","Value":8959269.60}]}}}"#.utf8))
        #expect(result.originatorConversationID == "p-1" && result.parameters["TransactionReceipt"]?.string == "SG632NMUAB")
    }
}
