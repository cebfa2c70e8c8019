import Curl
import Foundation
import GatewayHTTP
@testable import GatewayTestSupport
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import USSDGateway

/// The shipped haproxy in front of a real gateway (deploy/haproxy.cfg, see ``EdgeProxy``): the
/// gateway believes X-Forwarded-For from the proxy alone (`TRUSTED_PROXY_CIDRS=127.0.0.1/32`), so
/// what the proxy puts there decides the callback allowlist.
@Suite(.enabled(if: EdgeProxy.haproxy != nil && EdgeProxy.openssl != nil, "haproxy or openssl is not installed: bash scripts/services.sh install"))
struct EdgeProxyTests {
    /// A documentation address, standing in for a provider's.
    static let forged = "198.51.100.7"

    static func dial(_ token: String) -> (path: String, body: String) {
        let number = "+254" + freshLocal().dropFirst()
        return (
            "/ussd/africastalking/" + token,
            Phone.form(["sessionId": Phone.newSession(), "phoneNumber": number, "serviceCode": "*384*96#", "text": ""])
        )
    }

    static let form = [(name: "Content-Type", value: "application/x-www-form-urlencoded")]

    @Test func aForgedForwardedForReachesTheGatewayAsTheAddressHAProxySaw() async throws {
        let token = "edge-" + UUID().uuidString.lowercased()
        let harness = try await USSDHarness.make {
            $0.callbackToken = token
            $0.trustedProxyCIDRs = [CIDR("127.0.0.1/32")!]
        }
        let forgedHeaders = Self.form + [(name: "X-Forwarded-For", value: Self.forged)]

        // The allowlist names only the forged address: through haproxy the gateway sees 127.0.0.1.
        var refusing = harness.config
        refusing.callbackAllowedCIDRs = [CIDR("\(Self.forged)/32")!]
        try await buildApplication(config: refusing, logger: harness.capture.logger, menus: harness.graph).test(.live) { client in
            let port = try #require(client.port)
            try await EdgeProxy.run(gatewayPort: port) { edge in
                let (path, body) = Self.dial(token)
                // Straight to the gateway from 127.0.0.1 (a trusted proxy) the header is believed: the
                // refusal below is haproxy's doing.
                let direct = try await edge.send("http://127.0.0.1:\(port)" + path, headers: forgedHeaders, body: body)
                #expect(direct.status == 200, "the forged header, sent straight to the gateway, passes the allowlist")
                let through = try await edge.send(edge.tlsURL + path, headers: forgedHeaders, body: body)
                #expect(through.status == 403, "through haproxy the forged X-Forwarded-For must not reach the gateway: got \(through.status)")
                let listed = try await edge.send(
                    edge.tlsURL + path,
                    headers: Self.form + [
                        ("X-Forwarded-For", "203.0.113.1, \(Self.forged)"), ("Forwarded", "for=\(Self.forged)"), ("X-Real-IP", Self.forged),
                    ],
                    body: body)
                #expect(listed.status == 403, "a list, Forwarded and X-Real-IP are dropped too: got \(listed.status)")
            }
        }

        // The allowlist names only 127.0.0.1, the address haproxy saw: a forged header changes nothing.
        var accepting = harness.config
        accepting.callbackAllowedCIDRs = [CIDR("127.0.0.1/32")!]
        try await buildApplication(config: accepting, logger: harness.capture.logger, menus: harness.graph).test(.live) { client in
            let port = try #require(client.port)
            try await EdgeProxy.run(gatewayPort: port) { edge in
                let (path, body) = Self.dial(token)
                let direct = try await edge.send("http://127.0.0.1:\(port)" + path, headers: forgedHeaders, body: body)
                #expect(direct.status == 403, "the forged header, sent straight to the gateway, is believed and refused")
                let through = try await edge.send(edge.tlsURL + path, headers: forgedHeaders, body: body)
                #expect(
                    through.status == 200 && through.text == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name", "through haproxy: \(through.status) \(through.text)"
                )
            }
        }
        harness.expectNoTypedPINInLogs()
        await harness.finish()
    }

    @Test func plainHTTPIsRedirectedAndTheLogHoldsNoTokenAndNoQuery() async throws {
        let token = "edge-" + UUID().uuidString.lowercased()
        let password = "flares-" + UUID().uuidString.lowercased()
        let harness = try await USSDHarness.make {
            $0.callbackToken = token
            $0.trustedProxyCIDRs = [CIDR("127.0.0.1/32")!]
            $0.ussd.dialects = ["flares"]
            ($0.ussd.flaresUser, $0.ussd.flaresPassword) = ("airtel-ke", password)
        }
        let number = "254" + freshLocal().dropFirst()
        // A typed answer that looks like a PIN (none of TypedPINs: those the run's output is searched for).
        let typed = "4718"
        let session = DialectPhone.newSession()
        @Sendable func flares(_ input: String) -> String {
            "/ussd/flares/\(token)?SessionID=\(session)&MSISDN=\(number)&MSC=airtel&input=\(input)&userid=airtel-ke&password=\(password)"
        }
        let log = try await buildApplication(config: harness.config, logger: harness.capture.logger, menus: harness.graph).test(.live) { client in
            try await EdgeProxy.run(gatewayPort: try #require(client.port)) { edge in
                let (path, body) = Self.dial(token)
                let hop = try await edge.send(edge.tlsURL + path, headers: Self.form, body: body)
                #expect(hop.status == 200 && hop.text.hasPrefix("CON "), "\(hop.status) \(hop.text)")
                let first = try await edge.send(edge.tlsURL + flares("38496"), method: "GET")
                #expect(first.status == 200 && first.text.hasPrefix("Welcome"), "Flares' first hop through haproxy: \(first.status)")
                let second = try await edge.send(edge.tlsURL + flares(typed), method: "GET")
                #expect(second.status == 200, "Flares' second hop through haproxy: \(second.status)")

                let plain = try await edge.send(edge.plainURL + flares(typed), method: "GET")
                #expect(plain.status == 308, "plain HTTP is redirected: \(plain.status)")
                let location = plain.headers.first { $0.name.lowercased() == "location" }?.value ?? ""
                #expect(location.hasPrefix("https://"), "to https")
            }
        }

        let lines = log.split(separator: "\n").map(String.init).filter { $0.contains(" HTTP/") }
        #expect(lines.contains { $0.contains("\"POST /ussd/africastalking/<token> HTTP/") }, "the Africa's Talking hop is logged by its route")
        #expect(lines.filter { $0.contains("\"GET /ussd/flares/<token> HTTP/") }.count >= 3, "each Flares request is logged by its route")
        #expect(lines.contains { $0.contains(" 308 ") }, "the redirect is logged")
        // Decided first, so that a failure does not print the log: it would show what is kept out.
        let (hasToken, hasPassword, hasNumber) = (log.contains(token), log.contains(password), log.contains(number))
        let hasTyped = USSDHarness.containsToken(log, typed)
        let hasQuery = log.contains("?") || log.contains("SessionID=") || log.contains("input=")
        #expect(!hasToken, "a callback token reached haproxy's log")
        #expect(!hasPassword, "Flares' password reached haproxy's log")
        #expect(!hasNumber, "a phone number reached haproxy's log")
        #expect(!hasTyped, "typed input reached haproxy's log")
        #expect(!hasQuery, "a query string reached haproxy's log")
        harness.expectNoTypedPINInLogs()
        await harness.finish()
    }
}
