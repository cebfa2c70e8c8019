import HTTPTypes
import Hummingbird
import NIOCore

/// Protection for every provider callback route (Africa's Talking, M-Pesa). Providers sign
/// nothing, so: an unguessable token as one extra trailing path segment (compared in constant
/// time; anything else is 404, as if the route did not exist), and optionally a source-address
/// allowlist, where `X-Forwarded-For` counts only when the peer is a trusted proxy.
public struct CallbackGuard: Sendable {
    let token: String?
    let allowed: [CIDR]
    let trustedProxies: [CIDR]
    /// Where refusals go for the audit trail.
    let refusals: CallbackRefusals?

    public init(token: String?, allowed: [CIDR], trustedProxies: [CIDR], refusals: CallbackRefusals? = nil) {
        self.token = token
        self.allowed = allowed
        self.trustedProxies = trustedProxies
        self.refusals = refusals
    }

    /// The route path for `base`: with a token configured, `base/{token}`.
    public func paths(_ base: String) -> RouterPath {
        RouterPath(self.token == nil ? base : base + "/:callback_token")
    }

    /// Throws 404 for a wrong or missing token and 403 for a source outside the allowlist.
    public func check(_ request: Request, _ context: some RequestContext & RemoteAddressRequestContext) throws {
        if let token = self.token {
            let given = Array((context.parameters.get("callback_token") ?? "").utf8)
            let expected = Array(token.utf8)
            var difference = UInt8(given.count == expected.count ? 0 : 1)
            for index in 0..<expected.count {
                difference |= expected[index] ^ (index < given.count ? given[index] : 0)
            }
            if difference != 0 {
                self.refusals?.record(
                    route: self.route(request), reason: "wrong or missing callback token",
                    source: self.source(request, peer: context.remoteAddress?.ipAddress), status: 404
                )
                throw HTTPError(.notFound)
            }
        }
        guard !self.allowed.isEmpty else { return }
        guard let source = self.source(request, peer: context.remoteAddress?.ipAddress), self.allowed.contains(where: { $0.contains(source) }) else {
            context.logger.warning("callback from a source outside the allowlist", metadata: ["peer": .string(context.remoteAddress?.ipAddress ?? "unknown")])
            self.refusals?.record(
                route: self.route(request), reason: "source outside the allowlist",
                source: self.source(request, peer: context.remoteAddress?.ipAddress), status: 403
            )
            throw HTTPError(.forbidden)
        }
    }

    /// The route a refused request asked for, by its path without the token segment (never a token,
    /// right or wrong): `ussd.africastalking`, `mpesa.stk`, ...
    func route(_ request: Request) -> String {
        let segments = request.uri.path.split(separator: "/").prefix(6)
        return (self.token == nil ? segments : segments.dropLast()).joined(separator: ".")
    }

    /// A malformed callback that passed the guard: the reason logged and recorded, 400 to the caller.
    public func refuse(_ reason: String, _ request: Request, _ context: some RequestContext & RemoteAddressRequestContext, route: String) -> BadCallback {
        self.refusals?.record(route: route, reason: reason, source: self.source(request, peer: context.remoteAddress?.ipAddress), status: 400)
        return CallbackBody.refuse(reason, logger: context.logger, route: route)
    }

    /// The client address: the peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    func source(_ request: Request, peer: String?) -> String? {
        guard let peer else { return nil }
        let name = HTTPField.Name("X-Forwarded-For")!
        guard self.trustedProxies.contains(where: { $0.contains(peer) }), request.headers[name] != nil else { return peer }
        let hops = request.headers[values: name].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !self.trustedProxies.contains(where: { $0.contains(hop) }) {
            return hop
        }
        return hops.first ?? peer
    }
}
