import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
@testable import MoMo
import Synchronization
import Testing

/// MoMo's values without the network: references, amounts, callback bodies, safe errors; and the
/// callback as the fake delivers it, twice.
@Suite struct MoMoValuesTests {
    @Test func referencesAreDeterministicVersion4AndDistinct() throws {
        let first = MoMoReference(idempotencyKey: "movement-42")
        #expect(first == MoMoReference(idempotencyKey: "movement-42"), "a retry names the same MoMo request")
        #expect(first != MoMoReference(idempotencyKey: "movement-43"))
        let keys = (0..<2_000).map { "key-\($0)" }
        let references = keys.map { MoMoReference(idempotencyKey: $0).uuidString }
        #expect(Set(references).count == keys.count)
        for text in references {
            let bytes = Array(text.utf8)
            #expect(bytes.count == 36 && text == text.lowercased() && UUID(uuidString: text) != nil)
            #expect(bytes[14] == UInt8(ascii: "4") && "89ab".utf8.contains(bytes[19]), "version 4, RFC 4122 variant: \(text)")
            #expect(MoMoReference(uuid: text)?.uuidString == text)
        }
        // The published derivation: SHA-256("ussd-gateway/momo-reference/v1\0" + key), 16 bytes, v4 bits.
        #expect(MoMoReference(idempotencyKey: "").uuidString.count == 36)
        for bad in [
            "", first.uuidString.uppercased(), String(first.uuidString.dropLast()), first.uuidString + "0", "3f1c2a4e-8b7d-1c1e-9a2b-5d6e7f8a9b0c",
            "3f1c2a4e-8b7d-4c1e-7a2b-5d6e7f8a9b0c", "3f1c2a4e8b7d-4c1e-9a2b-5d6e7f8a9b0c0", "3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f8a9b0g", "../../etc/passwd-0000-0000-00000000",
        ] {
            #expect(MoMoReference(uuid: bad) == nil, "\(bad)")
        }
    }

    @Test func amountsRoundTripStrictly() {
        let cases: [(Int64, Int, String)] = [(1250, 2, "12.50"), (1200, 2, "12"), (5, 2, "0.05"), (0, 2, "0"), (500, 0, "500"), (123_456_789, 3, "123456.789")]
        for (units, decimals, text) in cases {
            #expect(MoMoAmount.string(minorUnits: units, decimals: decimals) == text)
            #expect(MoMoAmount.minorUnits(text, decimals: decimals) == units)
        }
        #expect(MoMoAmount.minorUnits("12.5", decimals: 2) == 1250)
        #expect(MoMoAmount.string(minorUnits: -1, decimals: 2) == nil && MoMoAmount.string(minorUnits: 1, decimals: 7) == nil)
        for bad in ["1e3", "12.505", "12.", ".5", "-5", "+5", " 5", "5 ", "1,000", "0x10", "012", "1.2.3", "", "NaN", "١٢", "99999999999999999999"] {
            #expect(MoMoAmount.minorUnits(bad, decimals: 2) == nil, "\(bad)")
        }
        #expect(MoMoAmount.minorUnits("5.0", decimals: 0) == nil, "no decimals in a currency without them")
    }

    static let documented = #"{"amount":"5","currency":"EUR","financialTransactionId":"1232581108","externalId":"6353636","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"payerMessage":"Pay for product a","payeeNote":"payer note","status":"SUCCESSFUL"}"#

    @Test func callbacksReadTheDocumentedBodiesAndRefuseOthers() throws {
        let paid = try MoMoTransaction.decodeCallback(Array(Self.documented.utf8))
        #expect(paid.status == .successful && paid.amount == "5" && paid.financialTransactionId == "1232581108" && paid.party.role == .payer)
        let transfer = try MoMoTransaction.decodeCallback(Array(#"{"amount":"5","currency":"EUR","externalId":"6353636","payee":{"partyIdType":"MSISDN","partyId":"0248888736"},"status":"FAILED","reason":"PAYEE_NOT_FOUND"}"#.utf8))
        #expect(transfer.party.role == .payee && transfer.reason == .init(code: "PAYEE_NOT_FOUND", message: nil))
        let object = try MoMoTransaction.decodeCallback(Array(#"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"FAILED","reason":{"code":"APPROVAL_REJECTED","message":"Rejected by payer"}}"#.utf8))
        #expect(object.reason == .init(code: "APPROVAL_REJECTED", message: "Rejected by payer"))
        // MTN's portal sample writes numbers where the schema says strings: whole numbers are read as their digits.
        let sample = try MoMoTransaction.decodeCallback(Array(#"{"amount":100,"currency":"UGX","financialTransactionId":23503452,"externalId":947354,"payer":{"partyIdType":"MSISDN","partyId":4656473839},"status":"SUCCESSFUL"}"#.utf8))
        #expect(sample.amount == "100" && sample.party.partyId == "4656473839")
        let malformed = [
            "{not json", "[]", #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"REJECTED"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"}}"#,
            #"{"amount":"1e3","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL"}"#,
            #"{"amount":5.5,"currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"euro","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"EMAIL","partyId":"a@b.c"},"status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"+4673"},"status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"EUR","status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"payee":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"FAILED","reason":["x"]}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"FAILED","reason":"not a code!"}"#,
            #"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL","externalId":"a\u0000b"}"#,
            #"{"a":{"b":{"c":{"d":{"e":1}}}},"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"46733123450"},"status":"SUCCESSFUL"}"#,
        ]
        for body in malformed {
            #expect(throws: MoMoCallbackMalformed.self, "\(body)") { try MoMoTransaction.decodeCallback(Array(body.utf8)) }
        }
        let padded = String(Self.documented.dropLast()) + #","payerMessage":""# + String(repeating: " ", count: 8 * 1024) + "}"
        #expect(throws: MoMoCallbackMalformed.self) { try MoMoTransaction.decodeCallback(Array(padded.utf8)) }
        do {
            _ = try MoMoTransaction.decodeCallback(Array(#"{"amount":"5","currency":"EUR","payer":{"partyIdType":"MSISDN","partyId":"s3cr3tvalue"},"status":"PENDING"}"#.utf8))
        } catch {
            #expect(!error.description.contains("s3cr3tvalue"), "a reason names the field, never its value")
        }
    }

    @Test func errorsNeverCarryASecret() {
        let secrets = [FakeMoMo.collection.subscriptionKey, FakeMoMo.disbursement.apiKey]
        let echoed = Array(#"{"code":"INVALID_KEY","message":"key \#(secrets[0]) and \#(secrets[1]) refused\n"}"#.utf8)
        let error = MoMoError.refusal(status: 401, body: echoed, secrets: secrets)
        #expect(error == .refused(status: 401, code: "INVALID_KEY", message: "key [redacted] and [redacted] refused"))
        let gateway = MoMoError.refusal(status: 401, body: Array(#"{"statusCode":401,"message":"Access denied"}"#.utf8), secrets: secrets)
        #expect(gateway == .refused(status: 401, code: "HTTP_401", message: "Access denied"))
        let long = MoMoError.refusal(status: 400, body: Array(("{\"code\":\"X\",\"message\":\"" + String(repeating: "m", count: 5000) + "\"}").utf8), secrets: [])
        #expect(long.description.count < 300)
        let configuration = MoMoConfiguration(collection: FakeMoMo.collection, disbursement: FakeMoMo.disbursement, callbackURL: "https://gw.example.com/momo/callback/t0ken")
        for text in [configuration.description, "\(configuration.collection)", String(describing: configuration.disbursement)] {
            for secret in [FakeMoMo.collection.apiKey, FakeMoMo.collection.subscriptionKey, FakeMoMo.disbursement.apiKey, FakeMoMo.disbursement.subscriptionKey, "t0ken"] {
                #expect(!text.contains(secret), "\(text)")
            }
        }
    }

    @Test func theFakeDeliversTheCallbackTwiceAndBothDecodeToTheSameResult() async throws {
        let received = Inbox()
        let router = Router()
        for method in [HTTPRequest.Method.put, .post] {
            router.on("/momo/callback/:token/:reference", method: method) { request, _ -> Response in
                let body = try await request.body.collect(upTo: MoMoTransaction.maximumBodyBytes + 1)
                received.items.withLock { $0.append((request.method.rawValue, request.uri.path, Array(body.readableBytesView))) }
                return Response(status: .ok)
            }
        }
        let receiver = LocalServer.Handle()
        await receiver.start(router)
        let fake = try await FakeMoMo.start()
        let http = CurlClient()
        let client = MoMoClient(configuration: fake.configuration(callbackURL: "http://127.0.0.1:\(receiver.port)/momo/callback/t0ken"), http: http)
        let reference = MoMoReference(idempotencyKey: "deposit-cb")
        do {
            try await client.requestToPay(reference: reference, amount: "7", externalID: "deposit-cb", payer: "46733123450", payerMessage: "m", payeeNote: "n")
            #expect(try await fake.postCallbacks(for: reference.uuidString, times: 2, http: http) == [200, 200])
            let bodies = received.items.withLock { $0 }
            #expect(bodies.count == 2 && bodies.allSatisfy { $0.method == "PUT" && $0.path == "/momo/callback/t0ken/" + reference.uuidString })
            let path = try #require(bodies.first?.path)
            #expect(MoMoReference(uuid: String(path.split(separator: "/").last ?? "")) == reference, "the reference is read back from the URL")
            let results = try bodies.map { try MoMoTransaction.decodeCallback($0.body) }
            #expect(results.count == 2 && results[0] == results[1] && results[0].status == .successful && results[0].externalId == "deposit-cb")
            // Delivered by the fake itself right after its answer, once per accepted request.
            fake.state.withLock { $0.callbackDelivery = .afterAnswer(times: 1) }
            try await client.requestToPay(reference: MoMoReference(idempotencyKey: "deposit-cb2"), amount: "7", externalID: "deposit-cb2", payer: "46733123450", payerMessage: "", payeeNote: "")
            for _ in 0..<50 where received.items.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(received.items.withLock { $0.count } == 3)
            #expect(fake.violations.isEmpty, "\(fake.violations)")
        } catch {
            Issue.record("\(error)")
        }
        await http.shutdown()
        await fake.stop()
        await receiver.stop()
    }
}

/// What the callback receiver was sent, shared with its route.
private final class Inbox: Sendable {
    let items = Mutex<[(method: String, path: String, body: [UInt8])]>([])
}
