import Foundation

/// An e-mail as RFC 5322 and MIME (RFC 2045-2049) want it: `From`, `To`, `Date`, `Message-ID`,
/// `Subject`, then a `multipart/mixed` body of a `text/plain` part and the attachments, each in
/// base64. ``rendered()`` writes it with CRLF line ends, ready for SMTP's DATA (libcurl stuffs the
/// dots).
///
/// Every header value passes one check before it is written: a CR, an LF or any other control
/// character refuses the whole message (``MailError/Code/headerInjection``), so no value can start
/// a header of its own (a `Bcc:`) or end the headers early. A subject outside printable ASCII is
/// written as RFC 2047 encoded words (UTF-8, base64), folded under 78 characters a line.
public struct MailMessage: Sendable {
    /// A file sent with the message.
    public struct Attachment: Sendable {
        /// The name a mail client saves it as: printable ASCII without quotes, backslashes or slashes.
        public var filename: String
        /// Its MIME type with parameters, e.g. `text/csv; charset=utf-8`.
        public var contentType: String
        public var data: [UInt8]

        public init(filename: String, contentType: String, data: [UInt8]) {
            (self.filename, self.contentType, self.data) = (filename, contentType, data)
        }
    }

    public var from: MailAddress
    public var to: [MailAddress]
    public var subject: String
    /// When it was written (the `Date` header); a value passed in, as every time in the gateway.
    public var date: Date
    /// The body's text, in any line ends (written as CRLF).
    public var text: String
    public var attachments: [Attachment]
    /// `<random@sender's domain>`, unique per message.
    public var messageID: String
    /// The time zone the `Date` header is written in.
    public var timeZone: TimeZone

    public init(
        from: MailAddress, to: [MailAddress], subject: String, date: Date, text: String, attachments: [Attachment] = [],
        timeZone: TimeZone = TimeZone(secondsFromGMT: 0)!
    ) {
        (self.from, self.to, self.subject, self.date, self.text, self.attachments, self.timeZone) = (
            from, to, subject, date, text, attachments, timeZone
        )
        self.messageID = "<\(Self.randomHex(16)).\(Int(date.timeIntervalSince1970))@\(from.domain)>"
    }

    /// The message as it goes over SMTP: headers, a blank line, the MIME body; every line ending CRLF.
    public func rendered() throws(MailError) -> [UInt8] {
        guard !self.to.isEmpty else { throw MailError(.noRecipient, "To") }
        let boundary = "=_ussd-gateway_" + Self.randomHex(16)
        var lines = [
            try Self.header("From", self.from.value),
            try Self.header("To", self.to.map(\.value).joined(separator: ", "), foldAt: ", "),
            try Self.subjectHeader(self.subject),
            try Self.header("Date", Self.dateFormatter(self.timeZone).string(from: self.date)),
            try Self.header("Message-ID", self.messageID),
            "MIME-Version: 1.0",
            // RFC 3834: a machine wrote it; vacation responders stay quiet.
            "Auto-Submitted: auto-generated",
            "Content-Type: multipart/mixed;\r\n boundary=\"\(boundary)\"",
            "",
            "This is a message in MIME format: a text part and its attachments.",
            "--" + boundary,
        ]
        lines += Self.textPart(self.text)
        for (index, attachment) in self.attachments.enumerated() {
            lines.append("--" + boundary)
            lines += try Self.attachmentPart(attachment, position: index + 1)
        }
        lines.append("--" + boundary + "--")
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }

    /// `Name: value`, refused when the value holds a control character; long values folded after
    /// `foldAt` (a separator of the value's own) so no line passes 78 characters where it can be helped.
    static func header(_ name: String, _ value: String, foldAt separator: String? = nil) throws(MailError) -> String {
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { throw MailError(.headerInjection, name) }
        guard let separator, name.count + 2 + value.count > 78 else { return "\(name): \(value)" }
        var lines: [String] = []
        var line = "\(name):"
        let items = value.components(separatedBy: separator)
        for (index, item) in items.enumerated() {
            let piece = item + (index < items.count - 1 ? separator.trimmingCharacters(in: .whitespaces) : "")
            if line.count + 1 + piece.count > 78 && line.count > name.count + 1 {
                lines.append(line)
                line = ""
            }
            line += " " + piece
        }
        lines.append(line)
        return lines.joined(separator: "\r\n")
    }

    /// `Subject:` as is when it is short printable ASCII; otherwise as encoded words of at most 39
    /// bytes of UTF-8 each (never splitting a character), one to a folded line.
    static func subjectHeader(_ subject: String) throws(MailError) -> String {
        let plain = try header("Subject", subject)
        let printable = subject.unicodeScalars.allSatisfy { (0x20...0x7E).contains($0.value) }
        guard !printable || plain.count > 78 else { return plain }
        var words: [String] = []
        var chunk = ""
        for character in subject {
            if chunk.utf8.count + character.utf8.count > 39 {
                words.append(chunk)
                chunk = ""
            }
            chunk.append(character)
        }
        if !chunk.isEmpty { words.append(chunk) }
        return "Subject: " + words.map { "=?UTF-8?B?\(Data($0.utf8).base64EncodedString())?=" }.joined(separator: "\r\n ")
    }

    /// The text part: 7bit when it is ASCII with lines SMTP can carry, base64 of its UTF-8 otherwise.
    static func textPart(_ text: String) -> [String] {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let sevenBit = lines.allSatisfy { line in line.utf8.count <= 998 && line.unicodeScalars.allSatisfy { $0.isASCII && ($0.value >= 0x20 || $0 == "\t") } }
        if sevenBit {
            // No line repeats the boundary: it holds 32 random hex digits.
            return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit", ""] + lines
        }
        return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64", ""] + Self.base64Lines(Array(lines.joined(separator: "\r\n").utf8))
    }

    static func attachmentPart(_ attachment: Attachment, position: Int) throws(MailError) -> [String] {
        let name = attachment.filename
        guard (1...100).contains(name.count), name.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) && !"\"\\/".unicodeScalars.contains($0) })
        else { throw MailError(.invalidAttachment, "attachment \(position)'s file name must be 1 to 100 printable ASCII characters without quotes or slashes") }
        return [
            try header("Content-Type", "\(attachment.contentType); name=\"\(name)\""),
            "Content-Transfer-Encoding: base64",
            try header("Content-Disposition", "attachment; filename=\"\(name)\""),
            "",
        ] + Self.base64Lines(attachment.data)
    }

    /// Base64 in lines of 76 characters (RFC 2045).
    static func base64Lines(_ bytes: [UInt8]) -> [String] {
        let encoded = Data(bytes).base64EncodedString()
        var lines: [String] = []
        var start = encoded.startIndex
        while start < encoded.endIndex {
            let end = encoded.index(start, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(String(encoded[start..<end]))
            start = end
        }
        return lines
    }

    /// RFC 5322's date-time: `Mon, 07 Dec 2026 06:00:00 +0300`.
    static func dateFormatter(_ timeZone: TimeZone) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = timeZone
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter
    }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
