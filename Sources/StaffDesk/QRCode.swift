import CQRencode

/// A QR code made by libqrencode (error correction M, the smallest version the text fits), drawn
/// as SVG for the desk's enrolment page or in text for a terminal: how a TOTP secret's
/// `otpauth://` URI reaches a phone once.
public struct QRCode: Sendable {
    /// The modules, row by row: true is dark.
    public let modules: [[Bool]]
    /// Light modules around the code, as scanners expect.
    static let quietZone = 4

    /// Nil when libqrencode cannot encode `text` (too long).
    public init?(_ text: String) {
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        self.modules = (0..<width).map { y in (0..<width).map { x in code.pointee.data[y * width + x] & 1 == 1 } }
    }

    func isDark(_ x: Int, _ y: Int) -> Bool {
        let (x, y) = (x - Self.quietZone, y - Self.quietZone)
        return y >= 0 && y < self.modules.count && x >= 0 && x < self.modules.count && self.modules[y][x]
    }

    public var svg: String {
        let module = 5
        let side = (self.modules.count + 2 * Self.quietZone) * module
        var path = ""
        for (y, row) in self.modules.enumerated() {
            for (x, dark) in row.enumerated() where dark {
                path += "M\((x + Self.quietZone) * module) \((y + Self.quietZone) * module)h\(module)v\(module)h-\(module)z"
            }
        }
        return """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(side) \(side)" width="\(side)" height="\(side)" role="img" aria-label="QR code">\
            <rect width="100%" height="100%" fill="#fff"/><path d="\(path)" fill="#000"/></svg>
            """
    }

    /// Two rows per line in half blocks, light modules drawn (as `qrencode -t UTF8` does, for a
    /// terminal's dark background).
    public var terminalText: String {
        let side = self.modules.count + 2 * Self.quietZone
        var lines: [String] = []
        for y in stride(from: 0, to: side, by: 2) {
            var line = ""
            for x in 0..<side {
                let (top, bottom) = (!self.isDark(x, y), y + 1 < side ? !self.isDark(x, y + 1) : false)
                line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " "
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The SVG of `text`'s code, or nil.
    public static func svg(_ text: String) -> String? { QRCode(text)?.svg }
}
