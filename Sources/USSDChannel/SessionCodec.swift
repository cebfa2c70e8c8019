import Foundation
import GatewayActions
import GatewayHTTP
import Menus

/// The bytes of a ``SessionRecord`` in Redis: a sequence of length-prefixed fields
/// (`<decimal length>:<bytes>`), in a fixed order after the `S1` tag. Written and read on every
/// hop, so it avoids Foundation's JSON coders (a measurable share of a hop); a record in the older
/// JSON form (starting with `{`) still reads.
enum SessionCodec {
    /// `prefix`: bytes to go before the record (the store's `<version>|`), in the same buffer.
    static func encode(_ record: SessionRecord, prefix: String = "") -> [UInt8] {
        var writer = Writer()
        writer.bytes.reserveCapacity(prefix.utf8.count + 256 + record.reply.utf8.count + 16 * (record.state?.variables.count ?? 0))
        writer.bytes.append(contentsOf: prefix.utf8)
        writer.put("S2")
        writer.put(String(record.hop))
        writer.put(String(record.textLength))
        writer.put(record.textSeal)
        writer.put(record.reply)
        writer.put(record.claim ?? "")
        writer.put(record.claimedAt.map { String($0) } ?? "")
        writer.put(record.msisdn ?? "")
        writer.put(state: record.state)
        writer.put(state: record.offer)
        // Last, so a replica of the version before (which stops after the offer) still reads the
        // record, and a record from it reads here without them.
        writer.put(record.sequence.map { String($0) } ?? "")
        writer.put(record.answeredAt.map { String($0) } ?? "")
        writer.put(record.indexedUntil.map { String($0) } ?? "")
        return writer.bytes
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws -> SessionRecord {
        if bytes.first == UInt8(ascii: "{") {
            return try JSONDecoder().decode(SessionRecord.self, from: Data(bytes))
        }
        var reader = Reader(bytes: bytes)
        let tag = try reader.string()
        guard tag == "S2" || tag == "S1" else { throw USSDStoreError.corrupt }
        reader.version = tag == "S2" ? 2 : 1
        let hop = try reader.int()
        let textLength = try reader.int()
        guard hop >= 0, textLength >= 0 else { throw USSDStoreError.corrupt }
        let textSeal = try reader.string()
        let reply = try reader.string()
        let claim = try reader.string()
        let claimedAt = try reader.string()
        let msisdn = reader.version >= 2 ? try reader.string() : ""
        let (state, offer) = (try reader.state(), try reader.state())
        // The latest-input dialects' fields, written last (absent from older records).
        let sequence = reader.atEnd ? "" : try reader.string()
        let answeredAt = reader.atEnd ? "" : try reader.string()
        // Where the active-session index stands (absent from older records: written on the next hop).
        let indexedUntil = reader.atEnd ? "" : try reader.string()
        return SessionRecord(
            hop: hop, textLength: textLength, textSeal: textSeal, reply: reply, state: state, offer: offer,
            claim: claim.isEmpty ? nil : claim, claimedAt: Double(claimedAt), msisdn: msisdn.isEmpty ? nil : msisdn, sequence: Int(sequence),
            answeredAt: Double(answeredAt), indexedUntil: Int(indexedUntil).flatMap { (0..<Int(Int32.max) * 4).contains($0) ? $0 : nil }
        )
    }

    /// A resume snapshot: `R1`, the session id, the state.
    static func encode(_ snapshot: ResumeSnapshot) -> [UInt8] {
        var writer = Writer()
        writer.put("R2")
        writer.put(snapshot.sessionId)
        writer.put(state: snapshot.state)
        return writer.bytes
    }

    static func decodeSnapshot(_ bytes: ArraySlice<UInt8>) throws -> ResumeSnapshot {
        if bytes.first == UInt8(ascii: "{") {
            return try JSONDecoder().decode(ResumeSnapshot.self, from: Data(bytes))
        }
        var reader = Reader(bytes: bytes)
        let tag = try reader.string()
        guard tag == "R2" || tag == "R1" else { throw USSDStoreError.corrupt }
        reader.version = tag == "R2" ? 2 : 1
        let sessionId = try reader.string()
        guard let state = try reader.state() else { throw USSDStoreError.corrupt }
        return ResumeSnapshot(sessionId: sessionId, state: state)
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func put(_ value: String) {
            var value = value
            value.withUTF8 { utf8 in
                self.bytes.append(contentsOf: String(utf8.count).utf8)
                self.bytes.append(UInt8(ascii: ":"))
                self.bytes.append(contentsOf: utf8)
            }
        }

        mutating func put(_ map: [String: String]) {
            self.put(String(map.count))
            for key in map.keys.sorted() {
                self.put(key)
                self.put(map[key]!)
            }
        }

        mutating func put(state: SessionState?) {
            guard let state else {
                self.put("0")
                return
            }
            self.put("1")
            self.put(state.screen)
            self.put(state.language)
            self.put(String(state.page))
            self.put(String(state.wrongInputs))
            self.put(state.variables)
            self.put(String(state.history.count))
            for screen in state.history { self.put(screen) }
            self.put(state.sealed)
            self.put(state.nonce)
        }
    }

    struct Reader {
        let bytes: ArraySlice<UInt8>
        var index: Int
        /// 1 for records written before the number and the seal nonce were kept.
        var version = 2

        init(bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            self.index = bytes.startIndex
        }

        mutating func string() throws -> String {
            var length = 0
            var digits = 0
            while self.index < self.bytes.endIndex, self.bytes[self.index] != UInt8(ascii: ":") {
                let digit = self.bytes[self.index] &- UInt8(ascii: "0")
                guard digit < 10, digits < 9 else { throw USSDStoreError.corrupt }
                length = length * 10 + Int(digit)
                digits += 1
                self.index += 1
            }
            guard digits > 0, self.index < self.bytes.endIndex, self.bytes.endIndex - self.index - 1 >= length else { throw USSDStoreError.corrupt }
            let start = self.index + 1
            self.index = start + length
            return String(decoding: self.bytes[start..<self.index], as: UTF8.self)
        }

        var atEnd: Bool { self.index >= self.bytes.endIndex }

        mutating func int() throws -> Int {
            guard let value = Int(try self.string()) else { throw USSDStoreError.corrupt }
            return value
        }

        mutating func map() throws -> [String: String] {
            let count = try self.int()
            guard (0...10_000).contains(count) else { throw USSDStoreError.corrupt }
            var map: [String: String] = [:]
            map.reserveCapacity(count)
            for _ in 0..<count {
                let key = try self.string()
                map[key] = try self.string()
            }
            return map
        }

        mutating func state() throws -> SessionState? {
            guard try self.string() == "1" else { return nil }
            let screen = try self.string()
            let language = try self.string()
            let page = try self.int()
            let wrongInputs = try self.int()
            var state = SessionState(screen: screen, variables: try self.map(), language: language)
            state.page = page
            state.wrongInputs = wrongInputs
            let count = try self.int()
            guard (0...10_000).contains(count) else { throw USSDStoreError.corrupt }
            state.history = try (0..<count).map { _ in try self.string() }
            state.sealed = try self.map()
            if self.version >= 2 { state.nonce = try self.string() }
            return state
        }
    }
}
