import AfricasTalking
import Basics
import Curl
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
import NIOCore
import Postgres
import TestSupport
import Testing
import USSDChannel
import USSDGateway
import Wallet

/// A handset behind one of the latest-input aggregators: each hop carries only what was typed on
/// it, in the dialect's own request, and each reply is read back from the dialect's own format
/// (checked for its shape and the page budget) as `CON ...` / `END ...`.
struct DialectPhone {
    enum Dialect: String, CaseIterable, Sendable {
        case hubtel, nalo, arkesel, flares
    }

    let client: any TestClientProtocol
    let dialect: Dialect
    /// E.164 digits, as the aggregators send them.
    let number: String
    let graph: MenuGraph
    var session = DialectPhone.newSession()
    var sequence = 0
    var last: [String: String] = [:]
    var lastInput: String?
    /// The dial string (`*384*96#`, or with a shortcut's extra digits).
    var dialString = "*384*96#"
    /// How long after an answer the same input again counts as a repeat (the gateway's default).
    var repeatWindow = Duration.seconds(2)

    /// The gateway's clock: moved past the repeat window where a person would take that long.
    let clock: AdvancingClock

    init(_ client: any TestClientProtocol, _ dialect: Dialect, _ local: String, graph: MenuGraph, clock: AdvancingClock) {
        self.clock = clock
        self.client = client
        self.dialect = dialect
        self.number = "254" + local.dropFirst()
        self.graph = graph
    }

    /// The same handset's session, its next hop going to another gateway (a replica behind the
    /// same load balancer).
    func on(_ client: any TestClientProtocol) -> DialectPhone {
        var phone = DialectPhone(client, self.dialect, "0" + self.number.dropFirst(3), graph: self.graph, clock: self.clock)
        (phone.session, phone.sequence, phone.lastInput, phone.dialString) = (self.session, self.sequence, self.lastInput, self.dialString)
        return phone
    }

    static func newSession() -> String { String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(24)) }

    /// A new session: the dial.
    mutating func dial() async throws -> String {
        self.session = Self.newSession()
        self.sequence = 1
        self.lastInput = nil
        return try await self.post(first: true, input: self.dialect == .flares ? self.dialString.filter(\.isNumber) : self.dialString)
    }

    /// Types one answer. A user answering the next screen with what they typed on the last one
    /// (a PIN, then its confirmation) does it no faster than a phone can, past the repeat window,
    /// unless the dialect numbers its hops.
    mutating func type(_ input: String) async throws -> String {
        if input == self.lastInput && self.dialect != .hubtel { self.clock.advance(by: self.repeatWindow + .milliseconds(200)) }
        self.sequence += 1
        self.lastInput = input
        return try await self.post(first: false, input: input)
    }

    /// The hop last posted, again, as an aggregator does when our answer was lost.
    func repeatLast() async throws -> String { try await self.post(first: self.sequence == 1, input: self.lastInput ?? self.firstInput) }

    var firstInput: String { self.dialect == .flares ? self.dialString.filter(\.isNumber) : self.dialString }

    /// Hubtel's `Release` or `Timeout`, or Flares' clean-up: the session is over.
    func close(timeout: Bool) async throws -> TestResponse {
        switch self.dialect {
        case .hubtel:
            let body = self.hubtelBody(type: timeout ? "Timeout" : "Release", message: "", sequence: self.sequence + 1)
            return try await self.client.execute(
                uri: "/ussd/hubtel", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
        case .flares:
            var query = "SessionID=\(self.session)&MSISDN=\(self.number)&MSC=airtel&clean=clean-session"
            if timeout { query += "&error=522" }
            return try await self.client.execute(uri: "/ussd/flares?" + query, method: .get)
        case .nalo, .arkesel:
            throw TestSetupError("\(self.dialect) sends no end of session")
        }
    }

    func hubtelBody(type: String, message: String, sequence: Int) -> String {
        Self.json([
            "Type": .string(type), "Mobile": .string(self.number), "SessionId": .string(self.session), "ServiceCode": .string("384"),
            "Message": .string(message), "Operator": .string("safaricom"), "Sequence": .integer(Int64(sequence)), "ClientState": .string("c-1"),
            "Platform": .string("USSD"),
        ])
    }

    /// Posts a hop in the dialect; the reply as `CON text` or `END text`.
    func post(first: Bool, input: String, sequence: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response: TestResponse
        switch self.dialect {
        case .hubtel:
            let body = self.hubtelBody(type: first ? "Initiation" : "Response", message: input, sequence: sequence ?? self.sequence)
            response = try await self.client.execute(
                uri: "/ussd/hubtel", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
        case .nalo:
            let body = Self.json([
                "USERID": .string("NALOTest"), "MSISDN": .string(self.number), "USERDATA": .string(input), "MSGTYPE": .bool(first),
                "NETWORK": .string("MTN"), "SESSIONID": .string(self.session),
            ])
            response = try await self.client.execute(
                uri: "/ussd/nalo", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
        case .arkesel:
            let body = Self.json([
                "sessionID": .string(self.session), "userID": .string("ARKESEL1"), "newSession": .bool(first), "msisdn": .string(self.number),
                "userData": .string(input), "network": .string("MTN"),
            ])
            response = try await self.client.execute(
                uri: "/ussd/arkesel", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
        case .flares:
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let query =
                "SessionID=\(self.session)&MSISDN=\(self.number)&MSC=airtel&input=\(input.addingPercentEncoding(withAllowedCharacters: allowed)!)"
            response = try await self.client.execute(uri: "/ussd/flares?" + query, method: .get)
        }
        #expect(response.status == .ok, "\(String(buffer: response.body))", sourceLocation: sourceLocation)
        let (text, continues) = try self.read(response, sourceLocation: sourceLocation)
        #expect(self.graph.budget.measure(text).fits && text.count <= 160, "reply over the page budget: \(text)", sourceLocation: sourceLocation)
        return (continues ? "CON " : "END ") + text
    }

    /// The reply's text and whether it continues, from the dialect's format, its echoes checked.
    func read(_ response: TestResponse, sourceLocation: SourceLocation) throws -> (String, Bool) {
        if self.dialect == .flares {
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true, sourceLocation: sourceLocation)
            #expect(
                response.headers[HTTPField.Name("charge")!] == "N" && response.headers[HTTPField.Name("amount")!] == "0",
                sourceLocation: sourceLocation)
            let freeflow = response.headers[HTTPField.Name("Freeflow")!]
            #expect(freeflow == "FC" || freeflow == "FB", sourceLocation: sourceLocation)
            return (String(buffer: response.body), freeflow == "FC")
        }
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
        // Not `parseChecked`: that is for callbacks, and a screen's lines are split by newlines.
        guard let json = JSONValue.parse(Array(response.body.readableBytesView)) else {
            throw TestSetupError("not JSON: \(String(buffer: response.body))")
        }
        switch self.dialect {
        case .hubtel:
            #expect(json["ClientState"]?.string == "c-1", "ClientState is echoed", sourceLocation: sourceLocation)
            let type = json["Type"]?.string
            #expect(type == "Response" || type == "Release", sourceLocation: sourceLocation)
            return (json["Message"]?.string ?? "", type == "Response")
        case .nalo:
            #expect(json["USERID"]?.string == "NALOTest" && json["MSISDN"]?.string == self.number, sourceLocation: sourceLocation)
            return (json["MSG"]?.string ?? "", json["MSGTYPE"] == .bool(true))
        case .arkesel:
            #expect(json["sessionID"]?.string == self.session && json["userID"]?.string == "ARKESEL1", sourceLocation: sourceLocation)
            #expect(json["msisdn"]?.string == self.number, sourceLocation: sourceLocation)
            return (json["message"]?.string ?? "", json["continueSession"] == .bool(true))
        case .flares:
            fatalError("read above")
        }
    }

    static func json(_ members: [String: JSONValue]) -> String { JSONValue.object(members).serialized }
}

/// The gateway with every dialect's route on, and the fake Daraja for deposits.
func dialectRig() async throws -> MPesaRig {
    try await MPesaRig.make { $0.ussd.dialects = USSDSettings.knownDialects }
}
