import Foundation
import GatewayActions
import GatewayHTTP
import Menus
import Redis

/// Sessions, resume snapshots, rate counters and the active-session index in Redis. Every write of
/// a session is compare-and-set on its version (a Lua script), so two overlapping callbacks of one
/// session cannot both apply.
struct USSDSessionStore: Sendable {
    let redis: RedisClient
    let ttlSeconds: Int
    let resumeWindowSeconds: Int

    static let activeKey = "ussd:active"

    static func sessionKey(_ id: String) -> String { "ussd:s:\(id)" }
    static func resumeKey(_ msisdn: String) -> String { "ussd:r:\(msisdn)" }

    /// Writes the record as `version + 1` only if the stored version is still `version` (0: absent),
    /// and in the same step sets or drops the number's resume snapshot and the active-session index.
    static let write = RedisScript(
        """
        local current = redis.call('GET', KEYS[1])
        local version = 0
        if current then version = tonumber(string.match(current, '^(%d+)|')) or -1 end
        if version ~= tonumber(ARGV[1]) then return 0 end
        redis.call('SET', KEYS[1], (version + 1) .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]))
        if ARGV[4] == 'set' then
            redis.call('SET', KEYS[2], ARGV[5], 'EX', tonumber(ARGV[6]))
        elseif ARGV[4] == 'del' then
            redis.call('DEL', KEYS[2])
        end
        if ARGV[7] == 'add' then
            redis.call('ZADD', KEYS[3], tonumber(ARGV[8]), ARGV[9])
        elseif ARGV[7] == 'rem' then
            redis.call('ZREM', KEYS[3], ARGV[9])
        end
        return version + 1
        """
    )

    /// Counts one hop in the number's current minute; returns the count.
    static let count = RedisScript(
        """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
        return n
        """
    )

    /// Drops expired entries of the active-session index and counts the rest.
    static let active = RedisScript(
        """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
        return redis.call('ZCARD', KEYS[1])
        """
    )

    func load(_ sessionId: String) async throws -> (version: Int, record: SessionRecord)? {
        guard let stored = try await self.redis.getBytes(Self.sessionKey(sessionId)) else { return nil }
        guard let bar = stored.firstIndex(of: UInt8(ascii: "|")), let version = Int(String(decoding: stored[..<bar], as: UTF8.self)) else {
            throw USSDStoreError.corrupt
        }
        return (version, try SessionCodec.decode(stored[(bar + 1)...]))
    }

    enum ResumeChange {
        case keep
        case set(ResumeSnapshot)
        case drop
    }

    /// The compare-and-set write; false when another callback wrote first.
    func save(_ sessionId: String, msisdn: String, expecting version: Int, _ record: SessionRecord, resume: ResumeChange) async throws -> Bool {
        let encoded = String(decoding: SessionCodec.encode(record), as: UTF8.self)
        var resumeMode = "keep", resumeValue = ""
        switch resume {
        case .keep: break
        case .set(let snapshot):
            if self.resumeWindowSeconds > 0 {
                resumeMode = "set"
                resumeValue = String(decoding: SessionCodec.encode(snapshot), as: UTF8.self)
            }
        case .drop: resumeMode = "del"
        }
        let live = record.state != nil
        let expiry = Int(Date().timeIntervalSince1970) + self.ttlSeconds
        let reply = try await self.redis.run(
            Self.write,
            keys: [Self.sessionKey(sessionId), Self.resumeKey(msisdn), Self.activeKey],
            arguments: [
                String(version), encoded, String(self.ttlSeconds), resumeMode, resumeValue, String(max(1, self.resumeWindowSeconds)),
                live ? "add" : "rem", String(expiry), sessionId,
            ]
        )
        return (reply.int ?? 0) > 0
    }

    func resumeSnapshot(_ msisdn: String) async throws -> ResumeSnapshot? {
        guard self.resumeWindowSeconds > 0, let bytes = try await self.redis.getBytes(Self.resumeKey(msisdn)) else { return nil }
        return try? SessionCodec.decodeSnapshot(bytes[...])
    }

    func dropResume(_ msisdn: String) async throws {
        _ = try await self.redis.delete(Self.resumeKey(msisdn))
    }

    /// Keeps a snapshot for the whole resume window from now (the session ended without `END`).
    func extendResume(_ msisdn: String) async throws {
        guard self.resumeWindowSeconds > 0 else { return }
        _ = try await self.redis.expire(Self.resumeKey(msisdn), seconds: self.resumeWindowSeconds)
    }

    /// Takes an ended session out of the active-session index (its record stays, for replays,
    /// until its TTL).
    func endSession(_ sessionId: String) async throws {
        _ = try await self.redis.send(["ZREM", Self.activeKey, sessionId])
    }

    /// Hops of this number in the current minute, this one included.
    func countHop(_ msisdn: String, now: Date = Date()) async throws -> Int {
        let minute = Int(now.timeIntervalSince1970) / 60
        return try await self.redis.run(Self.count, keys: ["ussd:rl:\(msisdn):\(minute)"]).int ?? 0
    }

    func activeSessions(now: Date = Date()) async throws -> Int {
        try await self.redis.run(Self.active, keys: [Self.activeKey], arguments: [String(Int(now.timeIntervalSince1970))]).int ?? 0
    }
}

enum USSDStoreError: Error, CustomStringConvertible {
    case corrupt
    var description: String { "a stored USSD session could not be read" }
}
