import Curl
import Foundation
import Testing

/// Mail as the client writes it, before any server: header values that would start a header of
/// their own are refused, addresses are plain, the MIME parts decode, and the SMTP URL's TLS rule.
@Suite struct MailMessageTests {
    static let from = MailAddress("reports@example.co.ke")!
    static let to = [MailAddress("finance@example.co.ke")!, MailAddress("auditor@example.com")!]

    static func message(subject: String = "Reconciliation 2026-12-06: reconciles") -> MailMessage {
        MailMessage(
            from: from, to: to, subject: subject, date: Date(timeIntervalSince1970: 1_796_536_800), text: "line one\nline two\n",
            attachments: [.init(filename: "reconciliation-2026-12-06.csv", contentType: "text/csv; charset=utf-8", data: Array("a,b\n1,2\n".utf8))]
        )
    }

    @Test func headerValuesWithALineBreakAreRefused() throws {
        for subject in ["Daily\r\nBcc: everyone@example.com", "Daily\nBcc: everyone@example.com", "Daily\rX: y", "tab\u{0}nul"] {
            #expect(throws: MailError(.headerInjection, "Subject")) { try Self.message(subject: subject).rendered() }
        }
        var message = Self.message()
        message.messageID = "<id@example.com>\r\nBcc: everyone@example.com"
        #expect(throws: MailError(.headerInjection, "Message-ID")) { try message.rendered() }
        message = Self.message()
        message.attachments[0].contentType = "text/csv\r\nContent-Type: text/html"
        #expect(throws: MailError(.headerInjection, "Content-Type")) { try message.rendered() }
        message = Self.message()
        message.attachments[0].filename = "a\"; evil=\"b.csv"
        #expect(throws: MailError.self) { try message.rendered() }
        // The refusal names the header, never the value.
        let refusal = MailError(.headerInjection, "Subject").description
        #expect(refusal.contains("Subject") && !refusal.contains("Bcc"))
    }

    @Test func addressesArePlain() {
        for good in ["finance@example.co.ke", "a.b+reports@mail-1.example.com", "ussd-gateway@localhost", "  padded@example.com "] {
            #expect(MailAddress(good) != nil, "\(good)")
        }
        for bad in [
            "", "finance", "@example.com", "finance@", "a@b@c", "two words@example.com", "a..b@example.com", ".a@example.com", "a@-example.com",
            "a@exa_mple.com", "Finance <finance@example.com>", "a@example.com\r\nBcc: x@example.com", "a@example.com,b@example.com", "jürgen@example.com",
        ] {
            #expect(MailAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func theMessageIsMIMEWithCRLFLinesAnEncodedSubjectAndABase64Attachment() throws {
        let subject = "Reconciliation 2026-12-06: DOES NOT RECONCILE — deposits credited or parked in suspense vs float out off by KES 1,200.00"
        let raw = String(decoding: try Self.message(subject: subject).rendered(), as: UTF8.self)
        #expect(!raw.replacingOccurrences(of: "\r\n", with: "").contains("\n") && !raw.replacingOccurrences(of: "\r\n", with: "").contains("\r"))
        let (head, _) = try #require(raw.range(of: "\r\n\r\n").map { (String(raw[..<$0.lowerBound]), String(raw[$0.upperBound...])) })
        for line in head.components(separatedBy: "\r\n") { #expect(line.count <= 78, "\(line)") }
        let unfolded = head.replacingOccurrences(of: "\r\n ", with: " ")
        let headers = Dictionary(unfolded.components(separatedBy: "\r\n").compactMap { line in
            line.firstIndex(of: ":").map { (String(line[..<$0]), line[line.index(after: $0)...].trimmingCharacters(in: .whitespaces)) }
        }, uniquingKeysWith: { first, _ in first })
        #expect(headers["From"] == "reports@example.co.ke" && headers["To"] == "finance@example.co.ke, auditor@example.com")
        #expect(headers["Date"] == "Sun, 06 Dec 2026 06:00:00 +0000", "\(headers["Date"] ?? "")")
        #expect(headers["Message-ID"]?.hasSuffix("@example.co.ke>") == true && headers["MIME-Version"] == "1.0")
        // Encoded words, each decoding to a piece of the subject.
        let words = try #require(headers["Subject"]).split(separator: " ")
        let decoded = try words.map { word -> String in
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            return String(decoding: try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2)))), as: UTF8.self)
        }.joined()
        #expect(decoded == subject)
        let boundary = try #require(headers["Content-Type"]?.components(separatedBy: "boundary=\"").last?.dropLast())
        let parts = raw.components(separatedBy: "--\(boundary)")
        #expect(parts.count == 4 && parts[3] == "--\r\n", "a text part, an attachment, the closing delimiter")
        #expect(parts[1].contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nline one\r\nline two\r\n"))
        #expect(parts[2].contains("Content-Disposition: attachment; filename=\"reconciliation-2026-12-06.csv\""))
        let body = try #require(parts[2].components(separatedBy: "\r\n\r\n").last).replacingOccurrences(of: "\r\n", with: "")
        #expect(Data(base64Encoded: body).map { Array($0) } == Array("a,b\n1,2\n".utf8))
    }

    @Test func tlsIsRequiredOffThisMachineAndTheURLIsShownWithoutItsPassword() throws {
        let implicit = try MailServer(url: "smtps://reports:s3cret@mail.example.com:465")
        #expect(implicit.security == .implicitTLS && implicit.hasCredentials && implicit.description == "smtps://mail.example.com:465")
        #expect(try MailServer(url: "smtps://mail.example.com").port == 465)
        let starttls = try MailServer(url: "smtp://reports:s3cret@mail.example.com:587")
        #expect(starttls.security == .startTLS && !starttls.description.contains("s3cret"))
        #expect(try MailServer(url: "smtp://127.0.0.1:2525").security == .none)
        #expect(try MailServer(url: "smtp://localhost:25").security == .none)
        // The host libcurl would reach decides, not what the URL starts with.
        #expect(try MailServer(url: "smtp://127.0.0.1@mail.example.com:25").security == .startTLS)
        #expect(try MailServer(url: "smtp://127.0.0.1.example.com:25").security == .startTLS)
        for bad in ["https://mail.example.com", "mail.example.com:465", "smtp://", "smtps://:465", "smtp://host:99999"] {
            #expect(throws: MailError.self, "\(bad)") { try MailServer(url: bad) }
        }
        do {
            _ = try MailServer(url: "ftp://user:s3cret@mail.example.com")
            Issue.record("an ftp:// URL was taken as a mail server")
        } catch {
            #expect(!error.description.contains("s3cret"))
        }
    }
}
