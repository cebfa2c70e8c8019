import Curl
import Foundation
import Logging
import Sandbox
import Testing
import TestSupport

/// The sandbox's SMTP server against hostile input, over a real socket: an overlong line, a
/// message that never ends, one too large, binary garbage. Each is refused, nothing half-received
/// is kept, and the server goes on taking a proper message from the real libcurl client.
@Suite(.timeLimit(.minutes(2))) struct SandboxMailServerTests {
    /// A server on a free port with small limits; its mailbox; stopped after `body`.
    static func withServer(_ body: (Int, SandboxMailbox) async throws -> Void) async throws {
        let mailbox = SandboxMailbox(capacity: 3)
        var limits = SMTPSession.Limits()
        limits.maximumMessageBytes = 64 * 1024
        limits.maximumErrors = 5
        let server = SandboxMailServer(port: 0, mailbox: mailbox, limits: limits, idleTimeout: .seconds(1), logger: Logger(label: "sandbox.mail"))
        let task = Task { try await server.run() }
        do {
            let port = try #require(await server.boundPort())
            try await body(port, mailbox)
        } catch {
            task.cancel()
            throw error
        }
        task.cancel()
        _ = try? await task.value
    }

    static func mail(_ text: String, port: Int) -> (MailMessage, MailServer) {
        let message = MailMessage(
            from: MailAddress("reports@example.co.ke")!, to: [MailAddress("finance@example.co.ke")!], subject: "Kept", date: Date(), text: text)
        return (message, try! MailServer(url: "smtp://127.0.0.1:\(port)"))
    }

    @Test func overlongLinesGarbageAndUnfinishedMessagesAreRefusedAndTheServerGoesOn() async throws {
        try await Self.withServer { port, mailbox in
            // An overlong line is refused; the same connection then works.
            try await RawSMTP.talk(port: port) { smtp in
                #expect(try await smtp.reply()?.hasPrefix("220 ") == true)
                try await smtp.send(String(repeating: "A", count: 50_000) + "\r\n")
                #expect(try await smtp.reply() == "500 5.5.2 Line too long")
                let hello = try await smtp.say("EHLO probe.example")
                #expect(hello?.hasPrefix("250-") == true && hello?.contains("250-AUTH PLAIN") == true, "\(hello ?? "")")
                #expect(try await smtp.say("NOOP") == "250 2.0.0 Ok")
                // Out of order, then pipelined: each command its reply.
                #expect(try await smtp.say("DATA")?.hasPrefix("503 ") == true)
                try await smtp.send("RSET\r\nNOOP\r\n")
                #expect(try await smtp.reply() == "250 2.0.0 Ok")
                #expect(try await smtp.reply() == "250 2.0.0 Ok")
                #expect(try await smtp.say("QUIT") == "221 2.0.0 Bye")
                #expect(try await smtp.reply() == nil, "closed after QUIT")
            }
            // Binary garbage: refused line by line, then the server hangs up.
            try await RawSMTP.talk(port: port) { smtp in
                _ = try await smtp.reply()
                var generator = SystemRandomNumberGenerator()
                // Small enough to be read at once: the server hangs up on what it has read, not on a
                // socket still holding bytes (which would reset the connection before its replies).
                var garbage = (0..<400).map { _ in UInt8.random(in: 0...255, using: &generator) }
                for _ in 0..<6 { garbage += [0, 0xFF, 0xFE, 0x1B, 0x5B, 0xC3, 0x28, 13, 10] }
                try await smtp.send(garbage)
                var replies: [String] = []
                while let reply = try await smtp.reply() { replies.append(reply) }
                #expect(replies.last?.hasPrefix("421 ") == true, "\(replies)")
                #expect(replies.dropLast().allSatisfy { $0.hasPrefix("5") }, "\(replies)")
            }
            // A message whose data never ends: the client goes away mid-DATA.
            try await RawSMTP.talk(port: port) { smtp in
                _ = try await smtp.reply()
                _ = try await smtp.say("EHLO probe.example")
                #expect(try await smtp.say("MAIL FROM:<a@example.com>") == "250 2.1.0 Ok")
                #expect(try await smtp.say("RCPT TO:<b@example.com>") == "250 2.1.5 Ok")
                #expect(try await smtp.say("DATA")?.hasPrefix("354 ") == true)
                // A bare-LF dot does not end the data (only CRLF.CRLF does).
                try await smtp.send("Subject: half\r\n\r\nno end here\n.\nstill data\r\n")
            }
            // The same, but the client stays and says nothing: the idle timeout closes it.
            try await RawSMTP.talk(port: port) { smtp in
                _ = try await smtp.reply()
                _ = try await smtp.say("HELO probe.example")
                _ = try await smtp.say("MAIL FROM:<a@example.com>")
                _ = try await smtp.say("RCPT TO:<b@example.com>")
                _ = try await smtp.say("DATA")
                try await smtp.send("Subject: waiting\r\n\r\nand waiting\r\n")
                #expect(try await smtp.reply()?.hasPrefix("421 4.4.2") == true)
                #expect(try await smtp.reply() == nil)
            }
            // Too large: read to its end, then refused as a whole.
            try await RawSMTP.talk(port: port) { smtp in
                _ = try await smtp.reply()
                _ = try await smtp.say("EHLO probe.example")
                #expect(try await smtp.say("MAIL FROM:<a@example.com> SIZE=999999999")?.hasPrefix("552 ") == true)
                _ = try await smtp.say("MAIL FROM:<a@example.com>")
                _ = try await smtp.say("RCPT TO:<b@example.com>")
                _ = try await smtp.say("DATA")
                try await smtp.send(String(repeating: String(repeating: "x", count: 900) + "\r\n", count: 100) + ".\r\n")
                #expect(try await smtp.reply()?.hasPrefix("552 5.3.4") == true)
                #expect(try await smtp.say("NOOP") == "250 2.0.0 Ok", "the connection goes on")
            }
            #expect(mailbox.messages().isEmpty, "nothing half-received or refused is kept")

            // The real client still gets through, with a line that begins with a dot (stuffed by
            // libcurl, unstuffed here) and one that is a dot alone.
            let http = CurlClient()
            let (message, server) = Self.mail("first line\n.starts with a dot\n.\nlast line\n", port: port)
            try await http.sendMail(message, via: server, timeout: .seconds(10))
            await http.shutdown()
            let kept = try #require(mailbox.messages().first)
            #expect(mailbox.messages().count == 1 && kept.subject == "Kept" && kept.envelopeTo == ["finance@example.co.ke"])
            #expect(kept.raw.contains("\r\nfirst line\r\n.starts with a dot\r\n.\r\nlast line\r\n"), "\(kept.raw)")
        }
    }

    /// `smtp://` to a host that is not loopback must upgrade to TLS: against a server that offers no
    /// STARTTLS (this one) nothing is sent. (0.0.0.0 reaches this machine on Linux, but is not a
    /// loopback name, so the client holds it to the rule.)
    @Test func plainSMTPToAnotherHostIsNeverSent() async throws {
        try await Self.withServer { port, mailbox in
            let http = CurlClient()
            let (message, _) = Self.mail("secret figures", port: port)
            let server = try MailServer(url: "smtp://reporter:mail-pass@0.0.0.0:\(port)")
            #expect(server.security == .startTLS)
            do {
                try await http.sendMail(message, via: server, timeout: .seconds(10))
                Issue.record("sent in the clear")
            } catch let error as CurlError {
                #expect(error.code == .tls && error.operation == .mail, "\(error)")
            }
            await http.shutdown()
            #expect(mailbox.messages().isEmpty)
        }
    }

    /// The mailbox keeps the newest messages only.
    @Test func keptMessagesAreBounded() async throws {
        try await Self.withServer { port, mailbox in
            let http = CurlClient()
            for number in 1...5 {
                let (message, server) = Self.mail("message \(number)", port: port)
                try await http.sendMail(message, via: server, timeout: .seconds(10))
            }
            await http.shutdown()
            #expect(mailbox.messages().map(\.sequence) == [3, 4, 5], "the newest three are kept")
            #expect(mailbox.messages(after: 4).map(\.sequence) == [5])
        }
    }
}
