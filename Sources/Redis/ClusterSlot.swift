/// Redis Cluster's key-to-slot rule: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
///
/// A hash tag is the part between the first `{` and the first `}` after it, when that part is not
/// empty: `ussd:s:{abc}` and `ussd:rs:{abc}` share a slot, so one script may touch both.
public enum ClusterSlot {
    public static let count = 16384

    /// The slot of a key.
    public static func of(_ key: some Collection<UInt8>) -> Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let rest = key[key.index(after: open)...]
            if let close = rest.firstIndex(of: UInt8(ascii: "}")), close != rest.startIndex {
                return Int(self.crc16(rest[..<close]) & 0x3FFF)
            }
        }
        return Int(self.crc16(key) & 0x3FFF)
    }

    /// The slot of a key given as text.
    public static func of(_ key: String) -> Int { self.of(key.utf8) }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in Redis' `crc16.c`.
    static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ self.table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    /// Where the key of a command is in its argv, for the commands this gateway sends: nil for
    /// commands without a key (`PING`, `CLUSTER ...`, `SCRIPT ...`, `INFO`), which any node answers.
    /// `EVAL`/`EVALSHA`/`FCALL` name their first key after the key count; every other command
    /// names it first.
    static func keyIndex(_ arguments: [[UInt8]]) -> Int? {
        guard let name = arguments.first else { return nil }
        let command = String(decoding: name, as: UTF8.self).uppercased()
        switch command {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count > 3, let keys = Int(String(decoding: arguments[2], as: UTF8.self)), keys > 0 else { return nil }
            return 3
        case "PING", "ECHO", "INFO", "CLUSTER", "SCRIPT", "FUNCTION", "AUTH", "HELLO", "SELECT", "DBSIZE", "TIME", "CONFIG",
            "CLIENT", "COMMAND", "SCAN", "WAIT", "ASKING", "READONLY", "READWRITE", "FLUSHALL", "FLUSHDB", "LASTSAVE", "ROLE",
            "MEMORY", "LATENCY", "SLOWLOG", "QUIT", "RESET":
            return nil
        default:
            return arguments.count > 1 ? 1 : nil
        }
    }
}
