import Curl
import Foundation
import Basics

/// A feature phone on Africa's Talking, for `ussd-gateway simulate`: it posts each hop in the
/// aggregator's format to a running gateway and keeps `text` the way the aggregator does (every
/// input of the session, `*`-joined).
public struct SimulatedPhone: Sendable {
    public let url: String
    public let phoneNumber: String
    public let serviceCode: String
    public private(set) var sessionId = SimulatedPhone.newSessionID()
    public private(set) var inputs: [String] = []
    let http: CurlClient

    /// `phone` in any usual form (`0712345678`, `254712345678`, `+254712345678`), of a country
    /// `plan` serves.
    public init?(url: String, phone: String, serviceCode: String, http: CurlClient, plan: NumberingPlan = .kenya) {
        guard let msisdn = MSISDN(parsing: phone, plan: plan) else { return nil }
        self.url = url
        self.phoneNumber = msisdn.international
        self.serviceCode = serviceCode
        self.http = http
    }

    static func newSessionID() -> String { "ATUid_sim_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }

    /// The current `text`.
    public var text: String { self.inputs.joined(separator: "*") }

    /// What the gateway answered: the screen and whether it waits for input.
    public struct Screen: Sendable, Equatable {
        public let text: String
        public let continues: Bool
    }

    /// Drops the call and dials again (a new session).
    public mutating func dial() async throws -> Screen {
        self.sessionId = Self.newSessionID()
        self.inputs = []
        return try await self.post()
    }

    /// Answers the screen on show.
    public mutating func answer(_ input: String) async throws -> Screen {
        self.inputs.append(input)
        return try await self.post()
    }

    private func post() async throws -> Screen {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let fields = [
            ("sessionId", self.sessionId), ("phoneNumber", self.phoneNumber), ("networkCode", "99999"), ("serviceCode", self.serviceCode),
            ("text", self.text),
        ]
        let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        let response = try await self.http.execute(
            CurlRequest(
                method: "POST", url: self.url,
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("User-Agent", "at-ussd-api (ussd-gateway simulate)")],
                body: Array(body.utf8), timeout: .seconds(15)
            )
        )
        let reply = response.text
        guard response.status == 200 else { throw SimulatorError.status(response.status, reply) }
        if reply.hasPrefix("CON ") { return Screen(text: String(reply.dropFirst(4)), continues: true) }
        if reply.hasPrefix("END ") { return Screen(text: String(reply.dropFirst(4)), continues: false) }
        throw SimulatorError.noPrefix(reply)
    }
}

public enum SimulatorError: Error, CustomStringConvertible {
    case status(Int, String)
    case noPrefix(String)

    public var description: String {
        switch self {
        case .status(let code, let body): return "the gateway answered HTTP \(code): \(body.prefix(200))"
        case .noPrefix(let body): return "the reply starts with neither CON nor END (a handset would drop the call): \(body.prefix(200))"
        }
    }
}
