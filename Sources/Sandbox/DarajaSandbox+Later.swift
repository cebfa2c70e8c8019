import Basics
import Curl
import Foundation
import Hummingbird
import Logging
import MPesa
import Synchronization

/// What the simulated customer and Safaricom do after a request was answered: approve or refuse on
/// the phone, pay out, and call the gateway back; and the shapes of those callbacks.
extension DarajaSandbox {
    func settle(_ checkout: String, _ push: Push, callbackURL: String) async {
        let (code, description) = push.outcome.result
        if push.outcome.paid {
            self.state.withLock { $0.workingCents += Int64(push.shillings) * 100 }
            self.inbox.deliver(
                to: "+" + push.phone, from: "MPESA",
                text: "\(push.receipt) Confirmed. Ksh\(push.shillings).00 sent to WALLET \(Self.shortcode) for account Wallet on \(Self.handsetDate(Date())). (sandbox)"
            )
        }
        var body = #"{"Body":{"stkCallback":{"MerchantRequestID":\#(quoted(push.merchantRequestID)),"CheckoutRequestID":\#(quoted(checkout)),"ResultCode":\#(code),"ResultDesc":\#(quoted(description))"#
        if push.outcome.paid {
            body += #","CallbackMetadata":{"Item":[{"Name":"Amount","Value":\#(push.shillings).00},{"Name":"MpesaReceiptNumber","Value":\#(quoted(push.receipt))},{"Name":"Balance"},{"Name":"TransactionDate","Value":\#(Self.nairobiStamp(Date()))},{"Name":"PhoneNumber","Value":\#(push.phone)}]}"#
        }
        body += "}}}"
        switch push.outcome {
        case .callbackLost:
            self.logger.info("sandbox STK callback withheld (amount ends in 7): the reconciler's STK Query settles it", metadata: ["checkout": .string(checkout)])
        case .callbackTwice:
            await self.callback(callbackURL, body, what: "STK callback")
            await self.callback(callbackURL, body, what: "STK callback (again)")
        default:
            await self.callback(callbackURL, body, what: "STK callback")
        }
    }

    func settle(_ originator: String, conversation: String, _ payment: Payment, resultURL: String, timeoutURL: String) async {
        let float = self.state.withLock { state -> Int64 in
            if payment.outcome.paid { state.utilityCents -= Int64(payment.shillings) * 100 }
            return state.utilityCents
        }
        if payment.outcome.paid {
            self.inbox.deliver(
                to: "+" + payment.phone, from: "MPESA",
                text: "\(payment.receipt) Confirmed. You have received Ksh\(payment.shillings).00 from WALLET \(Self.b2cShortcode) on \(Self.handsetDate(Date())). (sandbox)"
            )
        }
        switch payment.outcome {
        case .unregisteredReceiver:
            let body = Self.result(originator, conversation: conversation, code: 2040, description: "The receiver is not a registered M-Pesa customer.", transactionID: payment.receipt, parameters: [])
            await self.callback(resultURL, body, what: "B2C result")
        case .timedOut:
            let body = Self.result(originator, conversation: conversation, code: 1, description: "The request timed out in the queue.", transactionID: "", parameters: [])
            await self.callback(timeoutURL, body, what: "B2C timeout")
        case .paid, .resultTwice:
            let body = Self.result(
                originator, conversation: conversation, code: 0, description: "The service request is processed successfully.", transactionID: payment.receipt,
                parameters: [
                    ("TransactionAmount", String(payment.shillings)), ("TransactionReceipt", quoted(payment.receipt)),
                    ("ReceiverPartyPublicName", quoted(payment.phone + " - SANDBOX CUSTOMER")), ("TransactionCompletedDateTime", quoted(Self.resultDate(Date()))),
                    ("B2CUtilityAccountAvailableFunds", Self.decimal(float)), ("B2CRecipientIsRegisteredCustomer", quoted("Y")),
                ]
            )
            await self.callback(resultURL, body, what: "B2C result")
            if payment.outcome == .resultTwice { await self.callback(resultURL, body, what: "B2C result (again)") }
        }
    }

    /// Posts one callback, as Safaricom does: once, no signature; a failure is only logged.
    func callback(_ url: String, _ body: String, what: String) async {
        do {
            let response = try await self.http.execute(
                CurlRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: .seconds(15))
            )
            if response.status != 200 {
                self.logger.warning("sandbox \(what) not taken", metadata: ["status": .stringConvertible(response.status)])
            }
        } catch {
            self.logger.warning("sandbox \(what) not delivered", metadata: ["error": .string(String(describing: error))])
        }
    }

    // MARK: Shapes

    static func result(_ originator: String, conversation: String, code: Int, description: String, transactionID: String, parameters: [(String, String)]) -> String {
        Self.result(originator, conversation: conversation, code: String(code), description: description, transactionID: transactionID, parameters: parameters)
    }

    /// The `Result` envelope; `code` as JSON (a number, or a quoted name such as `"R000001"`).
    static func result(_ originator: String, conversation: String, code: String, description: String, transactionID: String, parameters: [(String, String)]) -> String {
        var body = #"{"Result":{"ResultType":0,"ResultCode":\#(code),"ResultDesc":\#(quoted(description)),"OriginatorConversationID":\#(quoted(originator)),"ConversationID":\#(quoted(conversation)),"TransactionID":\#(quoted(transactionID))"#
        if !parameters.isEmpty {
            let items = parameters.map { #"{"Key":"\#($0.0)","Value":\#($0.1)}"# }.joined(separator: ",")
            body += #","ResultParameters":{"ResultParameter":[\#(items)]}"#
        }
        return body + "}}"
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        Self.json(status, #"{"requestId":"sandbox-\#(Self.randomToken(8))","errorCode":\#(quoted(code)),"errorMessage":\#(quoted(message))}"#)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func remember<Value>(_ key: String, _ value: Value, in table: inout [String: Value], order: inout [String]) {
        table[key] = value
        order.append(key)
        if order.count > Self.remembered { table[order.removeFirst()] = nil }
    }

    /// A receipt number in M-Pesa's shape: ten capital letters and digits.
    static func receipt() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
        return "S" + String((0..<9).map { _ in alphabet.randomElement()! })
    }

    static func randomToken(_ length: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<length).map { _ in alphabet.randomElement()! })
    }

    static var nairobi: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 3 * 3600)!
        return calendar
    }

    /// `yyyyMMddHHmmss` in Nairobi time, as `TransactionDate` carries it.
    static func nairobiStamp(_ date: Date) -> String {
        let c = Self.nairobi.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02d%02d%02d%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// `dd.MM.yyyy HH:mm:ss`, as `TransactionCompletedDateTime` carries it.
    static func resultDate(_ date: Date) -> String {
        let c = Self.nairobi.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%02d.%02d.%04d %02d:%02d:%02d", c.day!, c.month!, c.year!, c.hour!, c.minute!, c.second!)
    }

    /// `28/11/26 at 12:05 PM`, as M-Pesa's confirmation SMS words it.
    static func handsetDate(_ date: Date) -> String {
        let c = Self.nairobi.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        let hour = c.hour! % 12 == 0 ? 12 : c.hour! % 12
        return String(format: "%d/%d/%02d at %d:%02d ", c.day!, c.month!, c.year! % 100, hour, c.minute!) + (c.hour! < 12 ? "AM" : "PM")
    }
}
