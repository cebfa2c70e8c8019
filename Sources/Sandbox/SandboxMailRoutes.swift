import Foundation
import Hummingbird

extension Sandbox {
    /// `GET /sandbox/mail[?after=N]`: the messages the sandbox's mail server kept, oldest first, as
    /// JSON (envelope, login, `From`, `To`, decoded `Subject`, size; each with its `rawURL`);
    /// `GET /sandbox/mail/<sequence>`: one message as it arrived, as text.
    static func registerMail<Context: RequestContext>(_ mailbox: SandboxMailbox, on router: Router<Context>) {
        router.get("/sandbox/mail") { request, _ -> Response in
            let after = request.uri.queryParameters["after"].flatMap { Int(String($0)) } ?? 0
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(MailPage(messages: mailbox.messages(after: after).map(MailSummary.init)))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/sandbox/mail/:sequence") { _, context -> Response in
            guard let sequence = context.parameters.get("sequence", as: Int.self), let message = mailbox.message(sequence) else {
                return Response(
                    status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "no such message (the sandbox keeps the newest \(mailbox.capacity))\n"))
                )
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: message.raw))
            )
        }
    }

    struct MailPage: Encodable {
        let messages: [MailSummary]
    }

    /// A kept message without its body.
    struct MailSummary: Encodable {
        let sequence: Int
        let receivedAt: Date
        let envelopeFrom: String
        let envelopeTo: [String]
        let login: String?
        let from: String
        let to: String
        let subject: String
        let size: Int
        let rawURL: String

        init(_ message: SandboxMailbox.Message) {
            (self.sequence, self.receivedAt, self.envelopeFrom, self.envelopeTo, self.login) = (
                message.sequence, message.receivedAt, message.envelopeFrom, message.envelopeTo, message.login
            )
            (self.from, self.to, self.subject, self.size) = (message.from, message.to, message.subject, message.size)
            self.rawURL = "/sandbox/mail/\(message.sequence)"
        }
    }
}
