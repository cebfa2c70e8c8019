import ArgumentParser
import Curl
import Foundation
import GatewayTelemetry
import Logging
import Menus
import MPesa
import MPesaBook
import MPesaGateway
import Postgres
import ServiceLifecycle
import USSDGateway
import Wallet

struct MPesaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpesa",
        abstract: "M-Pesa operations: reconcile by hand, list the reports kept for review, close one, register the paybill's URLs.",
        subcommands: [Reconcile.self, Review.self, Resolve.self, RegisterC2B.self]
    )

    struct RegisterC2B: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "register-c2b",
            abstract: """
                Register the paybill's confirmation and validation URLs with Daraja (PUBLIC_BASE_URL + /paybill/confirm and /paybill/validate, \
                the M-Pesa callback token last), ResponseType from MPESA_C2B_RESPONSE_TYPE. In production Safaricom takes this once per \
                shortcode: changing the URLs later takes its portal.
                """
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let missing = config.mpesa.missing(publicBaseURL: config.publicBaseURL)
            guard missing.isEmpty, let daraja = config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: config.mpesaToken),
                let shortcode = config.mpesa.paybillShortcode, let base = config.publicBaseURL
            else {
                FileHandle.standardError.write(Data("ussd-gateway: M-Pesa is not configured (missing \(missing.joined(separator: ", ")))\n".utf8))
                throw ExitCode(2)
            }
            let urls = MPesaSettings.paybillURLs(publicBaseURL: base, callbackToken: config.mpesaToken)
            let http = CurlClient()
            defer { Task { await http.shutdown() } }
            let client = DarajaClient(configuration: daraja, http: http, logger: Logger(label: "mpesa"))
            do {
                let answer = try await client.registerC2B(
                    shortcode: shortcode, responseType: config.mpesa.c2bResponseType, confirmationURL: urls.confirmation, validationURL: urls.validation
                )
                await http.shutdown()
                // The URLs carry the callback token: they are not printed.
                print("registered the paybill \(shortcode)'s URLs (ResponseType \(config.mpesa.c2bResponseType.rawValue)): \(answer)")
            } catch {
                await http.shutdown()
                FileHandle.standardError.write(Data("ussd-gateway: Daraja refused the registration: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one reconciliation pass now (pending deposits, open payouts that are due) and print what changed."
        )
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let missing = config.mpesa.missing(publicBaseURL: config.publicBaseURL)
            guard missing.isEmpty else {
                FileHandle.standardError.write(Data("ussd-gateway: M-Pesa is not configured (missing \(missing.joined(separator: ", ")))\n".utf8))
                throw ExitCode(2)
            }
            let changes = try await withPostgres(config, doing: "reconcile") { postgres in
                let http = CurlClient()
                let mpesa = MPesaService.make(config: config, book: MPesaBook(wallet: wallet(config, postgres)), http: http, metrics: .discarding,
                    logger: Logger(label: "mpesa"))!
                do {
                    let changes = try await mpesa.reconcile()
                    await http.shutdown()
                    return changes
                } catch {
                    await http.shutdown()
                    throw error
                }
            }
            print(changes.isEmpty ? "nothing to change" : changes.joined(separator: "\n"))
        }
    }

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List M-Pesa reports kept for a person, newest first: callbacks that matched nothing, conflicts (with the deposit or payout and both results), payouts the reconciler could not settle."
        )
        @OptionGroup var options: ConfigOptions
        @Option(help: "How many to list.") var limit = 50
        @Flag(help: "Also list the items already resolved, with how.") var all = false

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            let items = try await withPostgres(config, doing: "review") { try await MPesaBook(wallet: wallet(config, $0)).reviewItems(limit: self.limit, openOnly: !self.all) }
            print(items.isEmpty ? "nothing to review" : items.map(Self.line).joined(separator: "\n"))
        }

        /// `#id  kind  reference  reason  [deposit N | payout ID]  [was: ...  now: ...]`, tab-separated.
        static func line(_ item: ReviewItem) -> String {
            var fields = ["#\(item.id)", item.kind, item.reference, item.reason]
            if let deposit = item.depositID { fields.append("deposit \(deposit)") }
            if let payout = item.payoutID { fields.append("payout \(payout)") }
            if let earlier = item.earlierResult { fields.append("was: " + earlier) }
            if let new = item.newResult { fields.append("now: " + new) }
            if let resolution = item.resolution {
                fields.append("resolved \(resolution) by \(item.resolvedBy ?? "?"): \(item.resolutionNote ?? "")")
            }
            return fields.joined(separator: "\t")
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a review item after a credit, a refund or nothing, with a note; written to the audit trail. An item is closed once."
        )
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The item's id, as `mpesa review` lists it (#12 or 12).") var id: String
        @Option(help: "What was done: credited, refunded or nothing.") var outcome: String
        @Option(help: "What was done and why, for finance and the audit trail.") var note: String

        func run() async throws {
            let config = try self.options.loadForStaff()
            bootstrapLogging(config)
            guard let id = Int64(self.id.hasPrefix("#") ? String(self.id.dropFirst()) : self.id) else { throw refusal("the id is a number, e.g. 12") }
            guard ["credited", "refunded", "nothing"].contains(self.outcome) else { throw refusal("--outcome is credited, refunded or nothing") }
            let action = try OperatorOptions.action(reason: self.note)
            let closed = try await withPostgres(config, doing: "resolving") {
                try await MPesaBook(wallet: wallet(config, $0)).resolveReviewItem(id, resolution: self.outcome, note: action.reason, by: action)
            }
            guard closed else {
                FileHandle.standardError.write(Data("ussd-gateway: no open review item #\(id)\n".utf8))
                throw ExitCode(1)
            }
            print("resolved #\(id): \(self.outcome)")
        }
    }
}

/// A command line that cannot be used: one line on standard error, exit code 2.
