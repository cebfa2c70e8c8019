import Basics
import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// The desk's pages: Mustache templates (swift-mustache, which escapes every `{{value}}` for
/// HTML) and one stylesheet, read from the module's resources once. No script at all: every page
/// works as plain forms and links, so the Content Security Policy forbids scripts outright.
struct DeskViews: Sendable {
    /// Nothing from elsewhere, no script, no inline style, no framing, forms only to this origin.
    static let policy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    let library: MustacheLibrary
    let css: String

    init() throws {
        guard let folder = Bundle.module.url(forResource: "Templates", withExtension: nil) else {
            throw DeskViewError(description: "the desk's templates are missing from the build")
        }
        var library = MustacheLibrary()
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        for file in files where file.pathExtension == "mustache" {
            try library.register(String(contentsOf: file, encoding: .utf8), named: file.deletingPathExtension().lastPathComponent)
        }
        self.library = library
        self.css = try String(contentsOf: folder.appendingPathComponent("desk.css"), encoding: .utf8)
    }

    func render(_ template: String, _ context: [String: Any]) throws -> String {
        guard let html = self.library.render(context, withTemplate: template) else { throw DeskViewError(description: "no template \(template)") }
        return html
    }

    func page(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Self.response(html, type: "text/html; charset=utf-8", status: status)
    }

    func stylesheet() -> Response { Self.response(self.css, type: "text/css; charset=utf-8") }

    static func response(_ text: String, type: String, status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [
            .contentType: type, .contentSecurityPolicy: Self.policy, .cacheControl: "no-store",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff", HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("Referrer-Policy")!: "same-origin", HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
        ]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

struct DeskViewError: Error, CustomStringConvertible {
    let description: String
}

/// How the desk writes values people read.
enum DeskFormat {
    static let nairobi: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi")!
        return calendar
    }()

    /// `2026-12-07 14:05`, Nairobi's time.
    static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        let c = Self.nairobi.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0)
    }

    /// The start of a `yyyy-MM-dd` day in Nairobi; nil for anything else.
    static func day(_ text: String) -> Date? {
        let parts = text.split(separator: "-")
        guard text.count == 10, parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            (2000...2100).contains(year)
        else { return nil }
        let components = DateComponents(year: year, month: month, day: day)
        guard components.isValidDate(in: Self.nairobi) else { return nil }
        return Self.nairobi.date(from: components)
    }

    /// `text` with every phone number in it (a run of digits that is a number of a known country,
    /// as audit details or a movement's key may hold) masked, as the desk shows numbers.
    static func maskingNumbers(_ text: String) -> String {
        text.replacing(/\d{10,15}/) { match in
            let digits = String(match.output)
            return MSISDN(digits) == nil ? digits : MSISDN.masked(digits)
        }
    }

    /// An amount with every decimal its currency has (`GHS 1,250.00`): staff read exact figures.
    static func money(_ minor: Int64, _ currency: Currency) -> String {
        (Currency(code: currency.code, fractions: true) ?? currency).format(minor)
    }
}
