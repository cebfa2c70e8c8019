import Foundation

/// One SMTP conversation of the sandbox's mail server, as a pure state machine: a line in, the
/// replies out, and a message when one is complete. No I/O (``SandboxMailServer`` reads the lines
/// and writes the replies), so each rule below is a plain function of the state and the line.
///
/// It speaks what a client such as libcurl needs and no more (RFC 5321): the 220 greeting, `EHLO`
/// and `HELO`, `AUTH PLAIN` (any user and password: nothing is protected here, and the login is
/// kept only to show it), `MAIL FROM`, `RCPT TO`, `DATA` (354, the data's dot-stuffing undone up to
/// `CRLF.CRLF`), `RSET`, `NOOP`, `VRFY`, `HELP` and `QUIT`. Everything is bounded: a line
/// (``Limits/maximumLineBytes``), a message, the recipients, and the refusals before the connection
/// is closed. Garbage is answered with a 5xx reply, never a crash.
public struct SMTPSession: Sendable {
    /// The bounds of one conversation.
    public struct Limits: Sendable {
        /// RFC 5321's longest text line, CRLF included.
        public var maximumLineBytes = 1000
        public var maximumMessageBytes = 1 << 20
        public var maximumRecipients = 100
        /// Refused commands (unknown, malformed, out of order, too long) before the server hangs up.
        public var maximumErrors = 10

        public init() {}
    }

    /// A line as the framing read it: its bytes without the line end, and whether that end was
    /// CRLF (a bare LF does not end the data); or a line longer than the limit, dropped.
    enum Line: Sendable, Equatable {
        case text([UInt8], crlf: Bool)
        case overlong
    }

    /// A message taken: the envelope and the data, every line ending CRLF.
    struct Envelope: Sendable {
        let from: String
        let recipients: [String]
        let login: String?
        let data: [UInt8]
    }

    /// What to send back, whether to hang up after it, and the message completed, if one was.
    struct Output: Sendable {
        var replies: [String] = []
        var close = false
        var message: Envelope?
    }

    private enum State: Sendable {
        case awaitingHello
        case ready
        case awaitingCredentials
        case data(Incoming)
    }

    /// The message being received: its bytes so far, whether a limit was passed, whether the line
    /// before ended with CRLF.
    private struct Incoming: Sendable {
        var bytes: [UInt8] = []
        var refused: String?
        var afterCRLF = true
    }

    static let hostname = "sandbox.ussd-gateway.invalid"
    static let greeting = "220 \(hostname) ESMTP ussd-gateway sandbox: mail is kept, never sent on"

    let limits: Limits
    private var state = State.awaitingHello
    private var from: String?
    private var recipients: [String] = []
    private var login: String?
    private var errors = 0

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// The replies to one line.
    mutating func receive(_ line: Line) -> Output {
        if case .data(var data) = self.state { return self.receiveData(line, into: &data) }
        let printable: String? =
            if case .text(let bytes, _) = line, !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { String(decoding: bytes, as: UTF8.self) } else { nil }
        if case .awaitingCredentials = self.state {
            self.state = .ready
            guard let printable else { return self.refuse("501 5.5.2 Cannot decode the response") }
            return self.credentials(printable)
        }
        guard case .text = line else { return self.refuse("500 5.5.2 Line too long") }
        guard let text = printable else { return self.refuse("500 5.5.2 Syntax error, command unrecognized") }
        let verb = text.prefix { $0 != " " }.uppercased()
        let argument = text.dropFirst(verb.count).trimmingCharacters(in: .whitespaces)
        switch verb {
        case "EHLO", "HELO":
            guard !argument.isEmpty else { return self.refuse("501 5.5.4 \(verb) needs a domain") }
            (self.state, self.from, self.recipients) = (.ready, nil, [])
            if verb == "HELO" { return self.reply("250 \(Self.hostname)") }
            return self.reply(
                "250-\(Self.hostname) greets \(argument.prefix(64))", "250-SIZE \(self.limits.maximumMessageBytes)", "250-8BITMIME", "250-AUTH PLAIN",
                "250 HELP")
        case "AUTH": return self.authenticate(argument)
        case "MAIL": return self.mail(argument)
        case "RCPT": return self.recipient(argument)
        case "DATA":
            guard argument.isEmpty else { return self.refuse("501 5.5.4 DATA takes no argument") }
            guard self.from != nil else { return self.refuse("503 5.5.1 MAIL first") }
            guard !self.recipients.isEmpty else { return self.refuse("554 5.5.1 No valid recipients") }
            self.state = .data(Incoming())
            return self.reply("354 End data with <CR><LF>.<CR><LF>")
        case "RSET":
            (self.from, self.recipients) = (nil, [])
            return self.reply("250 2.0.0 Ok")
        case "NOOP": return self.reply("250 2.0.0 Ok")
        case "VRFY": return self.reply("252 2.5.2 Cannot VRFY user, but will accept the message")
        case "HELP": return self.reply("214 2.0.0 EHLO HELO AUTH MAIL RCPT DATA RSET NOOP VRFY QUIT")
        case "QUIT": return Output(replies: ["221 2.0.0 Bye"], close: true)
        case "STARTTLS": return self.refuse("454 4.7.0 TLS not available: the sandbox listens on loopback only")
        default: return self.refuse("500 5.5.2 Syntax error, command unrecognized")
        }
    }

    private mutating func authenticate(_ argument: String) -> Output {
        guard case .ready = self.state else { return self.refuse("503 5.5.1 EHLO first") }
        guard self.login == nil else { return self.refuse("503 5.5.1 Already authenticated") }
        let words = argument.split(separator: " ")
        guard words.first?.uppercased() == "PLAIN", words.count <= 2 else { return self.refuse("504 5.5.4 Only AUTH PLAIN is offered") }
        guard words.count == 2 else {
            self.state = .awaitingCredentials
            return self.reply("334 ")
        }
        return self.credentials(String(words[1]))
    }

    /// `AUTH PLAIN`'s response: base64 of `authzid NUL user NUL password`; any user is let in.
    private mutating func credentials(_ text: String) -> Output {
        guard text != "*" else { return self.refuse("501 5.7.0 Authentication cancelled") }
        guard let decoded = Data(base64Encoded: text), case let fields = decoded.split(separator: 0, omittingEmptySubsequences: false),
            fields.count == 3, !fields[1].isEmpty
        else { return self.refuse("501 5.5.2 Cannot decode the response") }
        self.login = String(decoding: fields[1].prefix(64), as: UTF8.self)
        return self.reply("235 2.7.0 Authentication successful")
    }

    private mutating func mail(_ argument: String) -> Output {
        guard case .ready = self.state else { return self.refuse("503 5.5.1 EHLO first") }
        guard self.from == nil else { return self.refuse("503 5.5.1 Sender already given") }
        guard let (path, parameters) = Self.path(argument, after: "FROM:") else { return self.refuse("501 5.5.4 Syntax: MAIL FROM:<address>") }
        for parameter in parameters where parameter.uppercased().hasPrefix("SIZE=") {
            guard let size = Int(parameter.dropFirst(5)), size <= self.limits.maximumMessageBytes else {
                return self.refuse("552 5.3.4 Message size exceeds the limit")
            }
        }
        self.from = path
        return self.reply("250 2.1.0 Ok")
    }

    private mutating func recipient(_ argument: String) -> Output {
        guard self.from != nil else { return self.refuse("503 5.5.1 MAIL first") }
        guard let (path, _) = Self.path(argument, after: "TO:"), !path.isEmpty else { return self.refuse("501 5.5.4 Syntax: RCPT TO:<address>") }
        guard self.recipients.count < self.limits.maximumRecipients else { return self.reply("452 4.5.3 Too many recipients") }
        self.recipients.append(path)
        return self.reply("250 2.1.5 Ok")
    }

    /// `FROM:<a@b> SIZE=10` as the path (`a@b`, possibly empty) and its parameters.
    static func path(_ argument: String, after keyword: String) -> (String, [Substring])? {
        guard argument.uppercased().hasPrefix(keyword) else { return nil }
        let rest = argument.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
        guard rest.hasPrefix("<"), let close = rest.firstIndex(of: ">") else { return nil }
        let path = String(rest[rest.index(after: rest.startIndex)..<close])
        guard path.utf8.count <= 256, !path.contains(" "), !path.contains("<") else { return nil }
        return (path, rest[rest.index(after: close)...].split(separator: " "))
    }

    /// A line of the message: stored with dot-stuffing undone, until `.` alone after a CRLF and
    /// before one. A limit passed keeps reading to the end, then refuses the whole message.
    private mutating func receiveData(_ line: Line, into data: inout Incoming) -> Output {
        defer { if case .data = self.state { self.state = .data(data) } }
        guard case .text(var bytes, let crlf) = line else {
            data.refused = "500 5.5.2 Line too long"
            data.afterCRLF = false
            return Output()
        }
        if bytes == [UInt8(ascii: ".")] && crlf && data.afterCRLF {
            self.state = .ready
            let envelope = Envelope(from: self.from ?? "", recipients: self.recipients, login: self.login, data: data.bytes)
            (self.from, self.recipients) = (nil, [])
            if let refusal = data.refused { return self.refuse(refusal) }
            return Output(replies: ["250 2.0.0 Ok: kept in the sandbox"], message: envelope)
        }
        if bytes.first == UInt8(ascii: ".") && data.afterCRLF { bytes.removeFirst() }
        data.afterCRLF = crlf
        if data.refused == nil {
            if data.bytes.count + bytes.count + 2 > self.limits.maximumMessageBytes {
                data.refused = "552 5.3.4 Message size exceeds the limit"
                data.bytes = []
            } else {
                data.bytes += bytes + [13, 10]
            }
        }
        return Output()
    }

    private func reply(_ lines: String...) -> Output { Output(replies: lines) }

    /// A refusal, counted: past ``Limits/maximumErrors`` in all the server says why and hangs up.
    private mutating func refuse(_ reply: String) -> Output {
        self.errors += 1
        guard self.errors < self.limits.maximumErrors else { return Output(replies: [reply, "421 4.7.0 Too many errors, closing"], close: true) }
        return Output(replies: [reply])
    }
}
