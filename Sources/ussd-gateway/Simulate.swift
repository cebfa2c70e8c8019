import ArgumentParser
import Curl
import Foundation
import Sandbox
import USSDGateway

/// `ussd-gateway simulate`: a terminal phone talking to a running gateway the way Africa's
/// Talking does.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dial the menus of a running gateway from the terminal, as a feature phone would.",
        discussion: """
            Type an answer and press Enter. :restart drops the call and dials again; :inbox shows the number's SMS inbox; :quit leaves.
            On a development gateway (`make run`) the number's SMS (receipts, M-Pesa's confirmations) print as they arrive.
            """
    )

    @Option(help: "The phone number dialling (0712345678, 254712345678 or +254712345678).")
    var phone: String

    @Option(help: "The gateway's base URL.")
    var url = "http://127.0.0.1:8080"

    @Option(help: "The USSD code dialled.")
    var code = "*384*96#"

    @Option(help: "The gateway's CALLBACK_TOKEN, if it has one.")
    var token: String?

    func run() async throws {
        let http = CurlClient()
        do {
            try await self.converse(http)
        } catch let error as CurlError {
            await http.shutdown()
            FileHandle.standardError.write(Data("ussd-gateway: cannot reach the gateway at \(self.url): \(error) (is `make run` serving?)\n".utf8))
            throw ExitCode(1)
        } catch {
            await http.shutdown()
            throw error
        }
        await http.shutdown()
    }

    private func converse(_ http: CurlClient) async throws {
        var endpoint = self.url.hasSuffix("/") ? String(self.url.dropLast()) : self.url
        endpoint += "/ussd/africastalking" + (self.token.map { "/" + $0 } ?? "")
        guard var phone = SimulatedPhone(url: endpoint, phone: self.phone, serviceCode: self.code, http: http) else {
            throw ValidationError("--phone must be a Kenyan mobile number such as 0712345678")
        }
        var lines = standardInputLines().makeAsyncIterator()
        let inbox = SimulatedInbox(baseURL: self.url, phoneNumber: phone.phoneNumber, http: http)
        // Messages already there are not news; what arrives from now on prints as it comes.
        let existing = try? await inbox.messages()
        let watcher = existing.map { existing in Task { await Self.watch(inbox, after: existing.last?.sequence ?? 0) } }
        defer { watcher?.cancel() }
        say("Dialling \(self.code) as \(phone.phoneNumber) (:restart to drop the call, :inbox for SMS, :quit to leave)\n")
        var screen = try await phone.dial()
        var showScreen = true
        while true {
            if showScreen {
                say("\n" + screen.text + "\n" + (screen.continues ? "> " : "[session ended; Enter dials again]\n"))
            }
            showScreen = true
            guard let line = await lines.next() else { return }
            switch line.trimmingCharacters(in: .whitespaces) {
            case ":quit", ":q":
                return
            case ":restart":
                say("[call dropped; dialling again]\n")
                screen = try await phone.dial()
            case ":inbox":
                showScreen = false
                if let messages = try await inbox.messages() {
                    say(messages.isEmpty ? "[inbox empty]\n" : messages.map(Self.shown).joined())
                } else {
                    say("[no sandbox on this gateway: SMS go to Africa's Talking]\n")
                }
                say(screen.continues ? "> " : "")
            default:
                screen = screen.continues ? try await phone.answer(line) : try await phone.dial()
            }
        }
    }
}

extension Simulate {
    /// Prints each message that reaches the inbox after sequence `after`, once a second, until cancelled.
    static func watch(_ inbox: SimulatedInbox, after: Int) async {
        var last = after
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard let messages = try? await inbox.messages(after: last), !messages.isEmpty else { continue }
            say("\n" + messages.map(Self.shown).joined())
            last = messages.last?.sequence ?? last
        }
    }

    static func shown(_ message: SandboxInbox.Message) -> String {
        "[SMS from \(message.from)] \(message.text)\n"
    }
}

/// Writes straight to standard output (unbuffered, so prompts and screens keep their order).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Lines of standard input, read on a thread of their own (a blocking read must not hold a
/// Swift concurrency thread).
func standardInputLines() -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream<String>.makeStream()
    let thread = Thread {
        while let line = readLine(strippingNewline: true) { continuation.yield(line) }
        continuation.finish()
    }
    thread.start()
    return stream
}
