import Curl
import Foundation

/// A simulated handset's SMS inbox on a development gateway's sandbox (`GET /sandbox/inbox`), for
/// `ussd-gateway simulate`: what Africa's Talking's sandbox delivered and what M-Pesa's said.
public struct SimulatedInbox: Sendable {
    public let baseURL: String
    public let phoneNumber: String
    let http: CurlClient

    /// `baseURL` is the gateway's (`http://127.0.0.1:8080`); `phoneNumber` is `+2547...`.
    public init(baseURL: String, phoneNumber: String, http: CurlClient) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.phoneNumber = phoneNumber
        self.http = http
    }

    /// The messages after sequence `after`, oldest first; nil when the gateway runs no sandbox.
    public func messages(after: Int = 0) async throws -> [SandboxInbox.Message]? {
        let phone = self.phoneNumber.replacingOccurrences(of: "+", with: "%2B")
        let response = try await self.http.execute(CurlRequest(url: self.baseURL + "/sandbox/inbox?phone=\(phone)&after=\(after)", timeout: .seconds(5)))
        guard response.status == 200 else { return nil }
        struct Page: Decodable { let messages: [SandboxInbox.Message] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Page.self, from: Data(response.body)).messages
    }
}
