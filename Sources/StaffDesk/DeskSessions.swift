import Basics
import Crypto
import Foundation
import Redis

/// One browser's sign-in at the desk, kept in Redis under a hash of its id (the id itself, the
/// cookie's secret, is never stored), for the idle timeout at most.
public struct DeskSession: Codable, Sendable, Hashable {
    public enum Stage: String, Codable, Sendable {
        /// The password was right; the second factor (or its enrolment) is next.
        case password
        case signedIn
    }

    public var login: String
    public var stage: Stage
    /// The member's `session_epoch` when it began: "sign out everywhere" moves that on.
    public var epoch: Int
    public var createdAt: Date
    public var lastSeenAt: Date
    /// Customers opened in this session (their id), with the reason given when opening.
    public var cases: [String: String] = [:]
    /// Customers whose number was shown unmasked after an audited click.
    public var revealed: Set<String> = []
    /// A line to show on the next page (post, redirect, get).
    public var notice: String?
    /// A refusal to show on the next page.
    public var problem: String?
    /// The enrolment secret shown on this sign-in, until its first code confirms it.
    public var enrolling: Bool = false
}

/// The desk's sessions: a random 256-bit id, signed with the desk's key in an `HttpOnly`,
/// `SameSite=Strict` cookie (`Secure` over TLS), the session under `desk:session:<sha256(id)>` with
/// the idle timeout as its TTL. A form's CSRF token is a MAC of the id under the same key, so it
/// changes with every session and is kept nowhere.
public struct DeskSessions: Sendable {
    public static let cookieName = "desk_session"
    /// Seconds an idle session stays in Redis after it expired, to be recognised as expired.
    static let expiredKept = 600
    let redis: RedisClient
    let key: SymmetricKey
    let idle: Duration
    let absolute: Duration
    let secure: Bool

    public init(redis: RedisClient, key: SymmetricKey, idle: Duration, absolute: Duration, secure: Bool) {
        self.redis = redis
        self.key = key
        self.idle = idle
        self.absolute = absolute
        self.secure = secure
    }

    /// A new session; its cookie's value.
    public func start(_ session: DeskSession) async throws -> String {
        let id = Self.base64URL(Data((0..<32).map { _ in UInt8.random(in: .min ... .max) }))
        try await self.save(id, session, creating: true)
        return id + "." + self.mac("session|" + id)
    }

    /// The session a cookie's value names, when its signature is right and it is in Redis: its id,
    /// the session, and whether a timeout has passed (an expired one is deleted here).
    public func load(_ cookie: String, now: Date) async throws -> (id: String, session: DeskSession, expired: Bool)? {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 43, Self.equal(String(parts[1]), self.mac("session|" + parts[0])) else { return nil }
        let id = String(parts[0])
        guard let json = try await self.redis.get(self.redisKey(id)), let session = try? JSONDecoder().decode(DeskSession.self, from: Data(json.utf8)) else {
            return nil
        }
        let expired = self.hasExpired(session, now: now)
        if expired { try await self.end(id) }
        return (id, session, expired)
    }

    /// Whether the idle or the absolute timeout has passed (a half-finished sign-in lasts 5 minutes).
    public func hasExpired(_ session: DeskSession, now: Date) -> Bool {
        let absolute = session.stage == .signedIn ? self.absolute : .seconds(300)
        return now.timeIntervalSince(session.lastSeenAt) > self.idle.inSeconds || now.timeIntervalSince(session.createdAt) > absolute.inSeconds
    }

    /// Writes the session back with a fresh idle timeout; only while it still exists (a session
    /// another request ended stays ended), unless `creating` it.
    public func save(_ id: String, _ session: DeskSession, creating: Bool = false) async throws {
        let json = String(decoding: try JSONEncoder().encode(session), as: UTF8.self)
        // Kept a while past the idle timeout, so that a late request finds it expired (and the
        // expiry is audited) rather than gone; ``hasExpired`` decides.
        _ = try await self.redis.set(
            self.redisKey(id), to: json, expiresIn: Int(self.idle.inSeconds.rounded(.up)) + Self.expiredKept,
            condition: creating ? .ifNotExists : .ifExists)
    }

    public func end(_ id: String) async throws {
        _ = try await self.redis.delete(self.redisKey(id))
    }

    /// The `Set-Cookie` value that sets (or, with nil, clears) the session cookie.
    public func cookieHeader(_ value: String?) -> String {
        var parts = ["\(Self.cookieName)=\(value ?? "")", "Path=/desk", "HttpOnly", "SameSite=Strict"]
        if self.secure { parts.append("Secure") }
        if value == nil { parts.append("Max-Age=0") }
        return parts.joined(separator: "; ")
    }

    /// The CSRF token every form of this session carries.
    public func csrfToken(_ id: String) -> String { self.mac("csrf|" + id) }

    public func checkCSRF(_ id: String, _ token: String?) -> Bool {
        guard let token else { return false }
        return Self.equal(token, self.csrfToken(id))
    }

    func redisKey(_ id: String) -> String {
        "desk:session:" + Hex.encode(SHA256.hash(data: Data(id.utf8)))
    }

    func mac(_ text: some StringProtocol) -> String {
        Self.base64URL(Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: self.key)))
    }

    static func equal(_ a: String, _ b: String) -> Bool { ConstantTime.equal(a.utf8, b.utf8) }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
