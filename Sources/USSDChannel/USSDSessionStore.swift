import Foundation
import GatewayActions
import GatewayHTTP
import Menus
import Redis

/// Sessions, resume snapshots, rate counters and the active-session index in Redis. Every write of
/// a session is compare-and-set on its version (a Lua script), so two overlapping callbacks of one
/// session cannot both apply.
///
/// The keys are laid out for Redis Cluster: what one script touches shares a hash tag.
/// - `ussd:s:{sessionId}`: the session record, with the session TTL.
/// - `ussd:rs:{sessionId}`: where the session stood, for "continue where you left off", with the
///   resume window. Written or dropped by the same script as the record (same slot).
/// - `ussd:r:{msisdn}`: the number's latest session with a snapshot: its id only, moved when a
///   session writes its first snapshot. A new dial reads it, then that session's snapshot.
/// - `ussd:rl:{msisdn}:{minute}`: the number's hops in a minute.
/// - `ussd:active:{n}`, n < 16: the live sessions by expiry time, spread over 16 sorted sets so
///   that on a cluster the index is not one hot key on one node.
struct USSDSessionStore: Sendable {
    let redis: RedisClient
    let ttlSeconds: Int
    let resumeWindowSeconds: Int

    /// Shards of the active-session index.
    static let activeShards = 16

    static func sessionKey(_ id: String) -> String { "ussd:s:{\(id)}" }
    static func snapshotKey(_ id: String) -> String { "ussd:rs:{\(id)}" }
    static func latestKey(_ msisdn: String) -> String { "ussd:r:{\(msisdn)}" }
    static func activeKey(_ sessionId: String) -> String { "ussd:active:{\(ClusterSlot.of(sessionId) % Self.activeShards)}" }
    static var activeKeys: [String] { (0..<Self.activeShards).map { "ussd:active:{\($0)}" } }

    /// How long the number's pointer to its latest session lives: past any session's life plus
    /// the resume window (the snapshot's own TTL decides whether there is anything to resume).
    var latestTTLSeconds: Int { 3600 + self.resumeWindowSeconds }

    /// Writes the record as `version + 1` only if the stored version is still `version` (0: absent),
    /// and in the same step sets or drops the session's resume snapshot. Returns `{version, created}`:
    /// the new version (0: another write came first), and 1 when this write gave the session its
    /// first snapshot.
    static let write = RedisScript(
        """
        local current = redis.call('GET', KEYS[1])
        local version = 0
        if current then version = tonumber(string.match(current, '^(%d+)|')) or -1 end
        if version ~= tonumber(ARGV[1]) then return {0, 0} end
        redis.call('SET', KEYS[1], (version + 1) .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]))
        local created = 0
        if ARGV[4] == 'set' then
            if redis.call('SET', KEYS[2], ARGV[5], 'EX', tonumber(ARGV[6]), 'GET') == false then created = 1 end
        elseif ARGV[4] == 'del' then
            redis.call('DEL', KEYS[2])
        end
        return {version + 1, created}
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

    /// Drops expired entries of one shard of the active-session index and counts the rest.
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

    /// The compare-and-set write; nil when another callback wrote first, else the record as
    /// written (with where the index stands). Alongside it, the active-session index learns
    /// whether the session is live; a session's first snapshot moves the number's pointer to it.
    ///
    /// The index is a gauge's source, not a guard, and it is not written on every hop: a live
    /// session's score (its expiry) is moved only when less than half the TTL of the one last
    /// written is left, and an ended session is taken out once. So a session idle for more than
    /// half its TTL may leave the gauge before its record expires; one that hops is counted.
    func save(
        _ sessionId: String, msisdn: String, expecting version: Int, _ record: SessionRecord, previous: SessionRecord?, resume: ResumeChange
    ) async throws -> SessionRecord? {
        var record = record
        let now = Int(Date().timeIntervalSince1970)
        let indexing = Self.indexing(&record, previous: previous, now: now, ttlSeconds: self.ttlSeconds)
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
        let redis = self.redis
        let index = Self.activeKey(sessionId)
        // Written whether or not the write wins, in the same round trip (queued ahead of the write
        // on one server; another node on a cluster); a failure to write it never fails the hop.
        let indexed: RedisSent?
        switch indexing {
        case .unchanged: indexed = nil
        case .live(let until): indexed = redis.sendWithoutWaiting(["ZADD", index, String(until), sessionId])
        case .ended: indexed = redis.sendWithoutWaiting(["ZREM", index, sessionId])
        }
        // A new session's first write almost always creates its first snapshot: the pointer moves
        // in the same round trip too (harmless if the write loses: the session is this number's).
        // Resume is a convenience: a pointer that could not be written costs only the offer.
        let pointEarly = version == 0 && resumeMode == "set"
        let pointed = pointEarly ? redis.sendWithoutWaiting(self.pointer(msisdn, at: sessionId)) : nil
        let reply = try await self.redis.run(
            Self.write,
            keys: [Self.sessionKey(sessionId), Self.snapshotKey(sessionId)],
            arguments: [String(version), encoded, String(self.ttlSeconds), resumeMode, resumeValue, String(max(1, self.resumeWindowSeconds))]
        )
        await indexed?.settled()
        await pointed?.settled()
        guard let parts = reply.array, parts.count == 2, let written = parts[0].int else {
            throw USSDStoreError.corrupt
        }
        if written > 0, parts[1].int == 1, !pointEarly {
            try? await self.pointLatest(msisdn, at: sessionId)
        }
        return written > 0 ? record : nil
    }

    /// What a write does to the active-session index.
    enum Indexing: Equatable {
        /// Nothing: the session's score there still has more than half the TTL to run, or it ended before.
        case unchanged
        /// The session is live until this Unix second.
        case live(until: Int)
        /// The session ended: out of the index.
        case ended
    }

    /// Decides the index write for `record` over `previous` and notes it in the record.
    static func indexing(_ record: inout SessionRecord, previous: SessionRecord?, now: Int, ttlSeconds: Int) -> Indexing {
        guard record.state != nil else {
            record.indexedUntil = nil
            // A session never indexed (a first hop that ended) or taken out before needs nothing.
            return previous?.indexedUntil != nil || previous?.state != nil ? .ended : .unchanged
        }
        if let until = previous?.indexedUntil, until - now > ttlSeconds / 2 {
            record.indexedUntil = until
            return .unchanged
        }
        record.indexedUntil = now + ttlSeconds
        return .live(until: now + ttlSeconds)
    }

    private func pointLatest(_ msisdn: String, at sessionId: String) async throws {
        try await self.redis.send(self.pointer(msisdn, at: sessionId))
    }

    /// `SET` of the number's pointer to its latest session.
    private func pointer(_ msisdn: String, at sessionId: String) -> [String] {
        ["SET", Self.latestKey(msisdn), sessionId, "EX", String(self.latestTTLSeconds)]
    }

    /// Where the number's latest unfinished session stood, if within the resume window.
    func resumeSnapshot(_ msisdn: String) async throws -> ResumeSnapshot? {
        guard self.resumeWindowSeconds > 0, let latest = try await self.redis.get(Self.latestKey(msisdn)),
            let bytes = try await self.redis.getBytes(Self.snapshotKey(latest))
        else { return nil }
        return try? SessionCodec.decodeSnapshot(bytes[...])
    }

    /// Forgets where the session stood (it finished).
    func dropResume(_ sessionId: String) async throws {
        _ = try await self.redis.delete(Self.snapshotKey(sessionId))
    }

    /// Keeps the session's snapshot for the whole resume window from now (it ended without `END`).
    func extendResume(_ sessionId: String) async throws {
        guard self.resumeWindowSeconds > 0 else { return }
        _ = try await self.redis.expire(Self.snapshotKey(sessionId), seconds: self.resumeWindowSeconds)
    }

    /// Takes an ended session out of the active-session index (its record stays, for replays,
    /// until its TTL).
    func endSession(_ sessionId: String) async throws {
        _ = try await self.redis.send(["ZREM", Self.activeKey(sessionId), sessionId])
    }

    /// Hops of this number in the current minute, this one included.
    func countHop(_ msisdn: String, now: Date) async throws -> Int {
        let minute = Int(now.timeIntervalSince1970) / 60
        return try await self.redis.run(Self.count, keys: ["ussd:rl:{\(msisdn)}:\(minute)"]).int ?? 0
    }

    /// Live sessions across every shard of the index (all replicas' sessions).
    func activeSessions(now: Date = Date()) async throws -> Int {
        let redis = self.redis
        let cutoff = String(Int(now.timeIntervalSince1970))
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for key in Self.activeKeys {
                group.addTask { try await redis.run(Self.active, keys: [key], arguments: [cutoff]).int ?? 0 }
            }
            return try await group.reduce(0, +)
        }
    }
}

enum USSDStoreError: Error, CustomStringConvertible {
    case corrupt
    var description: String { "a stored USSD session could not be read" }
}
