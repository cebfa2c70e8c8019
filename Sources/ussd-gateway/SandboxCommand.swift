import ArgumentParser
import Curl
import Foundation
import Sandbox

/// `ussd-gateway sandbox`: play the simulated providers' customers against a running development
/// gateway (`make run`).
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Act as a customer of the simulated providers of a running development gateway.",
        subcommands: [Paybill.self]
    )

    /// `ussd-gateway sandbox paybill NUMBER AMOUNT`: a simulated customer pays the wallet's paybill.
    struct Paybill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pay the wallet's paybill as a customer would from the M-Pesa menu, with NUMBER as the account.",
            discussion: """
                The gateway's sandbox (development only) asks the gateway's /paybill/validate, then posts the confirmation to \
                /paybill/confirm as Safaricom does. The gateway credits nothing on the confirmation's word: it asks the sandbox's \
                Transaction Status about the receipt, and credits the wallet of NUMBER once the answer confirms it (watch the inbox: \
                `ussd-gateway simulate --phone NUMBER`, or /simulator).
                """
        )

        @Argument(help: "The account typed: the wallet's phone number (0712345678, 254712345678 or +254712345678).")
        var number: String

        @Argument(help: "Whole shillings, 1 to 250000.")
        var amount: Int

        @Option(help: "The gateway's base URL.")
        var url = "http://127.0.0.1:8080"

        func validate() throws {
            guard (1...250_000).contains(self.amount) else { throw ValidationError("AMOUNT must be whole shillings from 1 to 250000") }
            guard !self.number.isEmpty, self.number.count <= 20 else { throw ValidationError("NUMBER must be an account of at most 20 characters") }
        }

        func run() async throws {
            let base = self.url.hasSuffix("/") ? String(self.url.dropLast()) : self.url
            let body = try JSONSerialization.data(withJSONObject: ["account": self.number, "amount": self.amount], options: [.sortedKeys])
            let http = CurlClient()
            let response: CurlResponse
            do {
                response = try await http.execute(
                    CurlRequest(
                        method: "POST", url: base + DarajaSandbox.paybillPath, headers: [("Content-Type", "application/json")], body: Array(body),
                        timeout: .seconds(30)
                    )
                )
            } catch {
                await http.shutdown()
                FileHandle.standardError.write(Data("ussd-gateway: cannot reach the gateway at \(self.url): \(error) (is `make run` serving?)\n".utf8))
                throw ExitCode(1)
            }
            await http.shutdown()
            let answer = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            switch response.status {
            case 200:
                say((answer?["message"] as? String ?? "paid") + "\n")
            case 404:
                FileHandle.standardError.write(Data("ussd-gateway: the gateway at \(self.url) simulates no Daraja (SANDBOX off, or M-Pesa credentials set)\n".utf8))
                throw ExitCode(1)
            default:
                let reason = answer?["errorMessage"] as? String ?? "HTTP \(response.status)"
                FileHandle.standardError.write(Data("ussd-gateway: the sandbox refused the payment: \(reason)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
