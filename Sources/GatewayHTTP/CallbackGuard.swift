import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Protection for every provider callback route (Africa's Talking, M-Pesa). Providers sign
/// nothing, so: an unguessable token as one extra trailing path segment (compared in constant
/// time; anything else is 404, as if the route did not exist), and optionally a source-address
/// allowlist, where `X-Forwarded-For` counts only when the peer is a trusted proxy.
///
/// One check serves both servers: the hop server makes it on a request's head, before the body
/// is read and before the route is called; Hummingbird's routes call ``check(_:_:)``.
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

    /// The route for `base`, its token when there is one, then `suffix` (`/:reference`).
    public func paths(_ base: String, then suffix: String) -> RouterPath {
        RouterPath((self.token == nil ? base : base + "/:callback_token") + suffix)
    }

    /// The route pattern for `base`, as logs and metrics name it (as Hummingbird's router names
    /// its routes): `base/{callback_token}` with a token.
    public func pattern(_ base: String) -> String {
        self.token == nil ? base : base + "/{callback_token}"
    }

    /// Whether the guard expects a token segment after the route's path.
    public var hasToken: Bool { self.token != nil }

    /// Refuses a wrong or missing token (404) and a source outside the allowlist (403); what a
    /// refusal records is made only on a refusal.
    func check(
        token given: Substring?, peer: String?, forwardedFor: [String], route: @autoclosure () -> String, logger: @autoclosure () -> Logger
    ) throws(CallbackRefused) {
        if let token = self.token {
            let given = Array((given ?? "").utf8)
            let expected = Array(token.utf8)
            var difference = UInt8(given.count == expected.count ? 0 : 1)
            for index in 0..<expected.count {
                difference |= expected[index] ^ (index < given.count ? given[index] : 0)
            }
            if difference != 0 {
                self.refusals?.record(
                    route: route(), reason: "wrong or missing callback token", source: self.source(peer: peer, forwardedFor: forwardedFor), status: 404
                )
                throw CallbackRefused(status: 404)
            }
        }
        guard !self.allowed.isEmpty else { return }
        guard let source = self.source(peer: peer, forwardedFor: forwardedFor), self.allowed.contains(where: { $0.contains(source) }) else {
            logger().warning("callback from a source outside the allowlist", metadata: ["peer": .string(peer ?? "unknown")])
            self.refusals?.record(route: route(), reason: "source outside the allowlist", source: self.source(peer: peer, forwardedFor: forwardedFor), status: 403)
            throw CallbackRefused(status: 403)
        }
    }

    /// Throws 404 for a wrong or missing token and 403 for a source outside the allowlist.
    public func check(_ request: Request, _ context: some RequestContext & RemoteAddressRequestContext) throws {
        do {
            try self.check(
                token: context.parameters.get("callback_token").map { Substring($0) }, peer: context.remoteAddress?.ipAddress,
                forwardedFor: Self.forwardedFor(request), route: self.route(request), logger: context.logger
            )
        } catch {
            throw HTTPError(HTTPResponse.Status(code: error.status))
        }
    }

    /// The route a refused request asked for, by its path without the token segment (never a token,
    /// right or wrong): `ussd.africastalking`, `mpesa.stk`, ...
    func route(_ request: Request) -> String {
        let segments = request.uri.path.split(separator: "/").prefix(6)
        return (self.token == nil ? segments : segments.dropLast()).joined(separator: ".")
    }

    /// The same name from a route's pattern.
    static func route(pattern: String) -> String {
        pattern.split(separator: "/").filter { !$0.hasPrefix("{") }.joined(separator: ".")
    }

    /// A malformed callback that passed the guard: the reason logged and recorded, 400 to the caller.
    public func refuse(_ reason: String, _ request: Request, _ context: some RequestContext & RemoteAddressRequestContext, route: String) -> BadCallback {
        self.refusals?.record(route: route, reason: reason, source: self.source(request, peer: context.remoteAddress?.ipAddress), status: 400)
        return CallbackBody.refuse(reason, logger: context.logger, route: route)
    }

    /// The same for a ``CallbackCall``.
    public func refuse(_ reason: String, _ call: CallbackCall, route: String) -> BadCallback {
        self.refusals?.record(route: route, reason: reason, source: self.source(peer: call.peer, forwardedFor: call.forwardedFor), status: 400)
        return CallbackBody.refuse(reason, logger: call.logger, route: route)
    }

    /// The client address: the peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    func source(_ request: Request, peer: String?) -> String? {
        self.source(peer: peer, forwardedFor: Self.forwardedFor(request))
    }

    func source(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer else { return nil }
        guard !forwardedFor.isEmpty, self.trustedProxies.contains(where: { $0.contains(peer) }) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !self.trustedProxies.contains(where: { $0.contains(hop) }) {
            return hop
        }
        return hops.first ?? peer
    }

    static let forwardedForName = HTTPField.Name("X-Forwarded-For")!

    static func forwardedFor(_ request: Request) -> [String] {
        request.headers[values: Self.forwardedForName]
    }
}
