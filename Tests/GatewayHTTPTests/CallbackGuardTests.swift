@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

/// The callback guard's reading of a request's source, and the address ranges it checks.
@Suite struct CallbackGuardTests {
    @Test func aTrustedProxysForwardedAddressIsTakenAndAnyoneElsesIsNot() {
        let guardian = CallbackGuard(token: nil, allowed: [CIDR("10.9.0.0/16")!], trustedProxies: [CIDR("127.0.0.1")!])
        var head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/")
        head.headerFields[HTTPField.Name("X-Forwarded-For")!] = "203.0.113.9, 10.9.4.4"
        let forwarded = Request(head: head, body: .init(buffer: ByteBuffer()))
        #expect(guardian.source(forwarded, peer: "127.0.0.1") == "10.9.4.4", "the proxy's word is taken")
        #expect(guardian.source(forwarded, peer: "192.0.2.1") == "192.0.2.1", "an untrusted peer's header is not")
    }

    @Test func addressRangesMatchIPv4IPv6AndMappedAddresses() {
        #expect(CIDR("10.9.0.0/16")!.contains("::ffff:10.9.1.2") && !CIDR("10.9.0.0/16")!.contains("10.10.0.1"))
        #expect(CIDR("2001:db8::/32")!.contains("2001:db8::1") && !CIDR("2001:db8::/32")!.contains("2001:db9::1"))
        #expect(CIDR("10.0.0.0/33") == nil && CIDR("not an address") == nil)
    }
}
