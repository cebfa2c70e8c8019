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
    static func activeKey(_ sessionId: String) -> String { Self.activeKeys[ClusterSlot.of(sessionId) % Self.activeShards] }
    static let activeKeys: [String] = (0..<Self.activeShards).map { "ussd:active:{\($0)}" }

    /// How long the number's pointer to its latest session lives: past any session's life plus
    /// the resume window (the snapshot's own TTL decides whether there is anything to resume).
    var latestTTLSeconds: Int { 3600 + self.resumeWindowSeconds }

    /// Writes the record (`ARGV[2]`, already `<version + 1>|...`) only if the stored one still starts
    /// with `ARGV[1]`, `<version>|` (`0|`: absent), with the TTL `ARGV[3]`; with `ARGV[4]` `set` or
    /// `del`, in the same step it sets (`ARGV[5]`, TTL `ARGV[6]`) or drops the session's resume
    /// snapshot (`KEYS[2]`, passed only then). Returns 0 when another write came first, 1 when
    /// written, 2 when this write also gave the session its first snapshot.
    ///
    /// Lean on purpose: it runs on every hop, on the Redis that every replica shares. The version
    /// is compared as the record's prefix and the record is written as it came (no number parsed,
    /// no string built), and a hop that leaves the snapshot alone passes one key and three values.
    /// It reads and writes records as the script before it did, so replicas of both versions
    /// work on one Redis during a rolling update.
    static let write = RedisScript(
        """
        local current = redis.call('GET', KEYS[1])
        if current then
            if string.sub(current, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
        elseif ARGV[1] ~= '0|' then
            return 0
        end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        if ARGV[4] == 'set' then
            if redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6], 'GET') == false then return 2 end
        elseif ARGV[4] == 'del' then
            redis.call('DEL', KEYS[2])
        end
        return 1
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
        // The version as the write script compares it: plain digits, as written (no sign, no leading
        // zero), and far from overflowing when one is added.
        let digits = stored[..<(stored.firstIndex(of: UInt8(ascii: "|")) ?? stored.endIndex)]
        guard digits.endIndex < stored.endIndex, let version = Int(String(decoding: digits, as: UTF8.self)),
            (0..<Int(Int32.max)).contains(version), String(version).utf8.elementsEqual(digits)
        else {
            throw USSDStoreError.corrupt
        }
        let bar = digits.endIndex
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
        let stored = SessionCodec.encode(record, prefix: String(version + 1) + "|")
        var arguments = [String(version) + "|", String(decoding: stored, as: UTF8.self), String(self.ttlSeconds)]
        var keys = [Self.sessionKey(sessionId)]
        switch resume {
        case .keep:
            break
        case .set(let snapshot):
            if self.resumeWindowSeconds > 0 {
                keys.append(Self.snapshotKey(sessionId))
                arguments += ["set", String(decoding: SessionCodec.encode(snapshot), as: UTF8.self), String(self.resumeWindowSeconds)]
            }
        case .drop:
            // With resume off (a window of 0) no snapshot is written, so none is dropped.
            if self.resumeWindowSeconds > 0 {
                keys.append(Self.snapshotKey(sessionId))
                arguments.append("del")
            }
        }
        let setsSnapshot = arguments.count > 3 && arguments[3] == "set"
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
        // in the same round trip too. If the write loses, the pointer may name a session that is
        // not this number's (a forged first hop); `resumeSnapshot` offers a snapshot only to the
        // number that started it. Resume is a convenience: a pointer that could not be written
        // costs only the offer.
        let pointEarly = version == 0 && setsSnapshot
        let pointed = pointEarly ? redis.sendWithoutWaiting(self.pointer(msisdn, at: sessionId)) : nil
        let reply = try await self.redis.run(Self.write, keys: keys, arguments: arguments)
        // An index write that failed is not remembered as made: this process writes it again next hop.
        if let indexed, await !indexed.settled() { record.indexedUntil = nil }
        await pointed?.settled()
        guard let outcome = reply.int, (0...2).contains(outcome) else {
            throw USSDStoreError.corrupt
        }
        if outcome == 2, !pointEarly {
            try? await self.pointLatest(msisdn, at: sessionId)
        }
        return outcome > 0 ? record : nil
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
        if let until = previous?.indexedUntil, until > now + ttlSeconds / 2 {
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

    /// Where the number's latest unfinished session stood, if within the resume window and the
    /// number's own: the pointer moves before the first write is known to win, so a forged first
    /// hop (another number's session id) can point a number at a session not its own; the
    /// snapshot's `msisdn`, set when the session started, decides.
    func resumeSnapshot(_ msisdn: String) async throws -> ResumeSnapshot? {
        guard self.resumeWindowSeconds > 0, let latest = try await self.redis.get(Self.latestKey(msisdn)),
            let bytes = try await self.redis.getBytes(Self.snapshotKey(latest)),
            let snapshot = try? SessionCodec.decodeSnapshot(bytes[...]), snapshot.state.variables["msisdn"] == msisdn
        else { return nil }
        return snapshot
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
