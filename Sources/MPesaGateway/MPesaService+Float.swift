import Basics
import Foundation
import GatewayTelemetry
import Logging
import MPesa
import MPesaBook
import Wallet

/// The float: Account Balance asked about the B2C shortcode once per interval for the whole
/// deployment, its answer kept when it names the query's acknowledgement (``MPesaBook``'s
/// `recordBalanceAnswer`). The gauges (`mpesa_float_balance`) read the latest reading from the
/// database, so every replica reports the same whichever replica took the answer.
extension MPesaService {
    /// Asks for the float unless another replica already did in this interval; whether this
    /// replica asked and Daraja acknowledged it.
    @discardableResult
    public func checkFloat(interval: Duration) async -> Bool {
        do {
            guard let query = try await self.book.claimBalanceQuery(interval: interval, now: self.now()) else { return false }
            let acknowledged = try await self.daraja.accountBalance()
            try await self.book.acknowledgeBalanceQuery(
                id: query, conversationID: acknowledged.conversationID, originator: acknowledged.originatorConversationID)
            self.counter("mpesa_float_queries_total", "accepted")
            self.logger.info("Account Balance asked", metadata: ["query": .stringConvertible(query)])
            return true
        } catch {
            self.counter("mpesa_float_queries_total", "failed")
            self.logger.warning("Account Balance not asked; asked again next interval", metadata: ["error": .string(safeDescription(of: error))])
            return false
        }
    }

    /// `POST /mpesa/balance/result`: an Account Balance answer. Kept once when it names an
    /// acknowledged query of ours; a repeat changes nothing; one naming no query is not trusted.
    public func balanceResult(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        var accounts: [MPesaBook.FloatAccount] = []
        var reportedAt = self.now()
        if result.succeeded {
            accounts = try FloatAnswer.accounts(result.parameters["AccountBalance"])
            reportedAt = FloatAnswer.completedTime(result.parameters["BOCompletedTime"]) ?? reportedAt
        }
        let kept = try await self.book.recordBalanceAnswer(
            conversationID: result.conversationID, originator: result.originatorConversationID, resultCode: result.resultCodeText,
            resultText: result.resultDescription, accounts: accounts, reportedAt: reportedAt
        )
        return self.balanceOutcome(kept, result, what: "Account Balance answer")
    }

    /// `POST /mpesa/balance/timeout`: the query timed out in Safaricom's queue; it is marked
    /// answered (nothing read) and the next interval asks again.
    public func balanceTimeout(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let kept = try await self.book.recordBalanceAnswer(
            conversationID: result.conversationID, originator: result.originatorConversationID, resultCode: "timeout",
            resultText: result.resultDescription, accounts: [], reportedAt: self.now()
        )
        return self.balanceOutcome(kept, result, what: "Account Balance timeout")
    }

    private func balanceOutcome(_ kept: MPesaBook.BalanceAnswer, _ result: B2CResult, what: String) -> CallbackOutcome {
        let metadata: Logger.Metadata = ["conversation": .string(result.conversationID), "code": .string(result.resultCodeText)]
        switch kept {
        case .kept(let accounts):
            self.logger.info("\(what) kept", metadata: metadata.merging(["accounts": .stringConvertible(accounts)]) { $1 })
            return result.succeeded ? .credited : .failed
        case .repeated:
            return .alreadyFinal
        case .unknown:
            self.logger.warning("\(what) naming no acknowledged query of ours; not trusted, nothing kept", metadata: metadata)
            return .ignored
        }
    }
}

/// Reading Account Balance's `ResultParameters`.
enum FloatAnswer {
    /// `AccountBalance`: accounts separated by `&`, each `Name|Currency|Amount|...`
    /// (`Working Account|KES|46713.00|46713.00|0.00|0.00&Utility Account|KES|...`). At most 16
    /// accounts, names of letters, digits and spaces, amounts in whole units with up to two
    /// decimals; anything else is malformed (400, nothing kept).
    static func accounts(_ value: JSONValue?) throws(DarajaCallbackMalformed) -> [MPesaBook.FloatAccount] {
        guard case .string(let text)? = value, (1...4096).contains(text.utf8.count) else { throw DarajaCallbackMalformed("AccountBalance missing") }
        let entries = text.split(separator: "&", omittingEmptySubsequences: true)
        guard (1...16).contains(entries.count) else { throw DarajaCallbackMalformed("AccountBalance malformed") }
        var accounts: [MPesaBook.FloatAccount] = []
        for entry in entries {
            let fields = entry.split(separator: "|", omittingEmptySubsequences: false)
            guard fields.count >= 3 else { throw DarajaCallbackMalformed("AccountBalance malformed") }
            let name = String(fields[0]).trimmingCharacters(in: .whitespaces)
            let currency = String(fields[1])
            guard (1...64).contains(name.utf8.count), name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == " ") }),
                currency.utf8.count == 3, currency.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) }),
                let cents = Self.cents(fields[2])
            else { throw DarajaCallbackMalformed("AccountBalance malformed") }
            accounts.append(MPesaBook.FloatAccount(account: name, currency: currency, available: Amount(cents: cents)))
        }
        return accounts
    }

    /// `8959269.60` as cents; at most 13 digits before the point and 2 after, an optional minus.
    static func cents(_ text: Substring) -> Int64? {
        var rest = text
        let negative = rest.first == "-"
        if negative { rest = rest.dropFirst() }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), (1...13).contains(parts[0].count), parts[0].allSatisfy(\.isASCIINumber),
            let whole = Int64(parts[0])
        else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            guard (1...2).contains(parts[1].count), parts[1].allSatisfy(\.isASCIINumber), let digits = Int64(parts[1]) else { return nil }
            fraction = parts[1].count == 1 ? digits * 10 : digits
        }
        let cents = whole * 100 + fraction
        return negative ? -cents : cents
    }

    /// `BOCompletedTime`, `yyyyMMddHHmmss` in Nairobi time (a number or a string).
    static func completedTime(_ value: JSONValue?) -> Date? {
        let text: String
        switch value {
        case .integer(let number)?: text = String(number)
        case .string(let string)?: text = string
        default: return nil
        }
        let digits = text.utf8.map { Int($0) - 48 }
        guard digits.count == 14, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + $1 } }
        var components = DateComponents()
        (components.year, components.month, components.day) = (number(0..<4), number(4..<6), number(6..<8))
        (components.hour, components.minute, components.second) = (number(8..<10), number(10..<12), number(12..<14))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 3 * 3600)!
        return calendar.date(from: components)
    }
}

extension Character {
    fileprivate var isASCIINumber: Bool { self.isASCII && self.isNumber }
}
