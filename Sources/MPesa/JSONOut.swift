import Basics
import Curl
import Foundation
import Logging

/// A JSON body with its keys in a fixed order, written without Foundation's encoder.
enum JSONOut {
    case string(String)
    case integer(Int)
    case object([(String, JSONOut)])

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        self.write(into: &out)
        return out
    }

    private func write(into out: inout [UInt8]) {
        switch self {
        case .integer(let number): out += Array(String(number).utf8)
        case .string(let text): Self.quote(text, into: &out)
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.quote(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func quote(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20: out += Array(String(format: "\\u%04x", Int(byte)).utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
