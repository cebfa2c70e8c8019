import Basics
import Foundation
import Hummingbird
import MPesa

/// Account Balance: what the simulated B2C shortcode's accounts hold, answered later on the
/// request's ResultURL as Safaricom does. The utility account (the float) starts at
/// ``startingFloat`` and falls with every payout the sandbox pays, so the gateway's float gauge
/// moves as the sandbox's journeys move money.
extension DarajaSandbox {
    /// KES 1,000,000.00.
    static let startingFloat: Int64 = 100_000_000

    func accountBalance(_ json: [String: JSONValue]) -> Response {
        let resultURL = json["ResultURL"]?.string ?? ""
        // Safaricom names the query itself: Account Balance takes no OriginatorConversationID.
        let originator = "sandbox-\(Self.randomToken(8))-\(Self.randomToken(6))"
        let conversation = "AG_\(Self.nairobiStamp(Date()).prefix(8))_\(Self.randomToken(12))"
        self.scheduler.after(.milliseconds(200)) {
            let (utility, working) = self.state.withLock { ($0.utilityCents, $0.workingCents) }
            let balance = [
                "Working Account|KES|\(Self.decimal(working))|\(Self.decimal(working))|0.00|0.00",
                "Float Account|KES|0.00|0.00|0.00|0.00",
                "Utility Account|KES|\(Self.decimal(utility))|\(Self.decimal(utility))|0.00|0.00",
                "Charges Paid Account|KES|0.00|0.00|0.00|0.00",
            ].joined(separator: "&")
            let body = Self.result(
                originator, conversation: conversation, code: 0, description: "The service request is processed successfully.", transactionID: Self.receipt(),
                parameters: [("AccountBalance", quoted(balance)), ("BOCompletedTime", Self.nairobiStamp(Date()))]
            )
            await self.callback(resultURL, body, what: "Account Balance result")
        }
        return Self.json(
            200,
            #"{"OriginatorConversationID":\#(quoted(originator)),"ConversationID":\#(quoted(conversation)),"ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}"#
        )
    }

    /// Cents as Daraja writes an amount: `8959269.60`.
    static func decimal(_ cents: Int64) -> String {
        let sign = cents < 0 ? "-" : ""
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return sign + String(magnitude / 100) + "." + (fraction < 10 ? "0" : "") + String(fraction)
    }
}
