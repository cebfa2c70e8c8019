import Basics
import Foundation
import Postgres

extension Wallet {
    /// Everything held about a customer, for a subject access request (`customer export`): the
    /// profile with the name opened, balances, every transfer of their accounts, deposits, payouts,
    /// paybill payments to their account, their SMS both ways (texts opened), the staff's requests
    /// about them and their audit trail. Other people appear only masked: a counterparty's number
    /// as `2547***678`, a payer's name in M-Pesa's bodies as `[another person]` unless it opens under
    /// this customer's own key. The export is written to the audit trail before it is read; nil when
    /// the number is not registered.
    public func export(_ msisdn: MSISDN, by action: OperatorAction) async throws -> JSONValue? {
        guard (try await self.postgres.query("SELECT 1 FROM customers WHERE msisdn = \(msisdn.value)").single()) != nil else { return nil }
        try await self.recordRead(msisdn, "customer.exported", shown: "everything held (customer export)", by: action)
        let customer = try await self.customer(msisdn)
        let personalData = try self.requirePersonalData()
        let number = msisdn.value
        func rows(_ query: PostgresQuery) async throws -> [[String: JSONValue]] {
            let result = try await self.postgres.query(query)
            let names = result.columns
            return try result.map { row in
                var object: [String: JSONValue] = [:]
                for (index, name) in names.enumerated() {
                    object[name] = try row.decode(String?.self, column: index).map(JSONValue.string) ?? .null
                }
                return object
            }
        }
        /// The other party's number masked.
        func maskingCounterparty(_ objects: [[String: JSONValue]], _ key: String) -> [JSONValue] {
            objects.map { object in
                var object = object
                if case .string(let other)? = object[key], other != number { object[key] = .string(MSISDN.masked(other)) }
                return .object(object)
            }
        }

        let profile = try await rows(
            """
            SELECT msisdn, subject::text, language, status, tier, created_at::text AS registered_at, erased_at::text,
                failed_pin_attempts::text, pin_locks::text, locked_until::text, pin_reset_required::text, privacy_notice, privacy_accepted_at::text
            FROM customers WHERE msisdn = \(number)
            """
        )
        var profileObject = profile.first ?? [:]
        profileObject["name"] = try await self.name(of: customer).map(JSONValue.string) ?? .string("[erased]")
        let balances = try await rows(
            "SELECT kind, balance::text, held::text FROM account_balances WHERE customer_id = \(customer.id) ORDER BY kind")
        let transfers = try await rows(
            """
            SELECT t.id, t.kind, t.amount::text, t.status, t.created_at::text,
                CASE WHEN da.customer_id = \(customer.id) THEN 'out' ELSE 'in' END AS direction,
                CASE WHEN da.customer_id = \(customer.id) THEN ca.kind ELSE da.kind END AS other_account,
                CASE WHEN da.customer_id = \(customer.id) THEN cc.msisdn ELSE dc.msisdn END AS counterparty
            FROM transfers t
            JOIN accounts da ON da.id = t.debit_account JOIN accounts ca ON ca.id = t.credit_account
            LEFT JOIN customers dc ON dc.id = da.customer_id LEFT JOIN customers cc ON cc.id = ca.customer_id
            WHERE da.customer_id = \(customer.id) OR ca.customer_id = \(customer.id)
            ORDER BY t.created_at, t.id
            """
        )
        let deposits = try await rows(
            """
            SELECT id::text, idempotency_key, amount::text, status, receipt, result_code::text, result_text, created_at::text
            FROM deposits WHERE customer_id = \(customer.id) ORDER BY id
            """
        )
        let payouts = try await rows(
            "SELECT id, amount::text, fee::text, status, result_code::text, result_text, created_at::text FROM payouts WHERE customer_id = \(customer.id) ORDER BY created_at"
        )
        var paybill: [JSONValue] = []
        for row in try await self.postgres.query(
            "SELECT trans_id, amount::text, state, confirmed_at::text, confirmation::text FROM paybill_payments WHERE customer_id = \(customer.id) ORDER BY trans_id"
        ) {
            let (transID, amount, state, at, body) = try row.decode((String, String, String?, String?, String?).self)
            var payer: [String: JSONValue] = [:]
            if let body, case .object(let members)? = JSONValue.parse(Array(body.utf8)) {
                for key in ["FirstName", "MiddleName", "LastName"] {
                    guard case .string(let stored)? = members[key], !stored.isEmpty else { continue }
                    payer[key] = .string(try await self.payerName(stored, reference: transID, key: key, subject: customer.subject, personalData))
                }
            }
            paybill.append(.object([
                "trans_id": .string(transID), "amount": .string(amount), "state": state.map(JSONValue.string) ?? .null,
                "confirmed_at": at.map(JSONValue.string) ?? .null, "payer": .object(payer),
            ]))
        }
        // The provider's own records of their payments, as kept (every body M-Pesa sent about them,
        // and the ones kept for a person to review), with what was sealed for them opened.
        var records: [JSONValue] = []
        for row in try await self.postgres.query(
            """
            SELECT 'deposit', checkout_request_id, raw_callback::text, updated_at::text FROM deposits
                WHERE customer_id = \(customer.id) AND raw_callback IS NOT NULL AND checkout_request_id IS NOT NULL
            UNION ALL
            SELECT 'paybill', trans_id, confirmation::text, confirmed_at::text FROM paybill_payments
                WHERE customer_id = \(customer.id) AND confirmation IS NOT NULL
            UNION ALL
            SELECT 'payout', id, raw_result::text, updated_at::text FROM payouts WHERE customer_id = \(customer.id) AND raw_result IS NOT NULL
            UNION ALL
            SELECT 'status_answer', q.id, q.answer::text, q.asked_at::text FROM mpesa_status_queries q
                WHERE q.answer IS NOT NULL AND ((q.subject = 'payout' AND q.reference IN (SELECT id FROM payouts WHERE customer_id = \(customer.id)))
                    OR (q.subject = 'c2b' AND q.reference IN (SELECT trans_id FROM paybill_payments WHERE customer_id = \(customer.id))))
            UNION ALL
            SELECT 'review:' || r.kind, r.reference, r.body::text, r.received_at::text FROM mpesa_review r
                WHERE r.deposit_id IN (SELECT id FROM deposits WHERE customer_id = \(customer.id))
                    OR r.payout_id IN (SELECT id FROM payouts WHERE customer_id = \(customer.id))
                    OR (r.kind = 'c2b' AND r.reference IN (SELECT trans_id FROM paybill_payments WHERE customer_id = \(customer.id)))
            ORDER BY 4, 2
            """
        ) {
            let (kind, reference, body, at) = try row.decode((String, String, String, String).self)
            guard let parsed = JSONValue.parse(Array(body.utf8)) else { continue }
            records.append(.object([
                "kind": .string(kind), "reference": .string(reference), "at": .string(at),
                "body": try await self.opened(parsed, reference: reference, subject: customer.subject, personalData),
            ]))
        }
        var inbound: [JSONValue] = []
        for row in try await self.postgres.query(
            "SELECT id, received_at::text, status, subject::text, text_sealed FROM sms_inbound WHERE sender = \(number) ORDER BY received_at, id"
        ) {
            let (id, at, status, subject, sealed) = try row.decode((String, String, String, String?, Data?).self)
            var text: String?
            if let sealed, let subject = subject.flatMap(UUID.init(uuidString:)) { text = try await personalData.open(sealed, for: subject, at: .inboundText(id)) }
            // A command names other people's numbers (`SEND 0722...`): masked like every other one.
            let shown = text.map { Self.maskingNumbers($0) }
            inbound.append(.object(["id": .string(id), "received_at": .string(at), "status": .string(status), "text": shown.map(JSONValue.string) ?? .null]))
        }
        var outbound: [JSONValue] = []
        for row in try await self.postgres.query(
            """
            SELECT dedupe_key, created_at::text, status, template, params::text, subject::text, message_sealed, delivery_status
            FROM outbox WHERE recipient = \(number) ORDER BY created_at, id
            """
        ) {
            let (dedupe, at, status, template, params, subject, sealed, delivery) = try row.decode((String, String, String, String, String, String?, Data?, String?).self)
            var text: String?
            if let sealed, let subject = subject.flatMap(UUID.init(uuidString:)) { text = try await personalData.open(sealed, for: subject, at: .outboxMessage(dedupe)) }
            // A notice's parameters name the other party of a send: masked.
            var values: [String: JSONValue] = [:]
            if case .object(let members)? = JSONValue.parse(Array(params.utf8)) {
                for (key, value) in members {
                    if ["to", "from"].contains(key), case .string(let other) = value { values[key] = .string(MSISDN.masked(other)) } else { values[key] = value }
                }
            }
            outbound.append(.object([
                "created_at": .string(at), "status": .string(status), "template": .string(template), "values": .object(values),
                "text": text.map(JSONValue.string) ?? .null, "delivery": delivery.map(JSONValue.string) ?? .null,
            ]))
        }
        let requests = try await rows(
            "SELECT id::text, kind, amount::text, status, requested_by, reason, requested_at::text, decided_by, decided_at::text FROM ledger_requests WHERE subject = \(customer.subject.uuidString)::uuid OR msisdn = \(number) ORDER BY id"
        )
        let audit = try await rows(
            "SELECT id::text, at::text, actor, action, reason, before::text, after::text FROM audit_log WHERE subject = \(customer.subject.uuidString)::uuid OR msisdn = \(number) ORDER BY id"
        )
        return .object([
            "exported_at": .string(ISO8601DateFormatter().string(from: self.now())),
            "profile": .object(profileObject),
            "balances": .array(balances.map(JSONValue.object)),
            "transfers": .array(maskingCounterparty(transfers, "counterparty")),
            "deposits": .array(deposits.map(JSONValue.object)),
            "payouts": .array(payouts.map(JSONValue.object)),
            "paybill_payments": .array(paybill),
            "provider_records": .array(records),
            "sms_received": .array(inbound),
            "sms_sent": .array(outbound),
            "staff_requests": .array(requests.map(JSONValue.object)),
            "audit_trail": .array(audit.map(JSONValue.object)),
        ])
    }

    /// `text` with every run of nine or more digits (a phone number in any form) masked.
    static func maskingNumbers(_ text: String) -> String {
        var output = ""
        var digits = ""
        for character in text + " " {
            if character.isASCII && character.isNumber {
                digits.append(character)
                continue
            }
            output += digits.count >= 9 ? MSISDN.masked(digits) : digits
            digits = ""
            output.append(character)
        }
        return String(output.dropLast())
    }

    /// A payer's name as an export shows it: opened when it was sealed for this customer (they paid
    /// their own account), `[another person]` when someone else paid, `[erased]` once unreadable.
    /// `body` with each sealed value (``MPesaBook``'s `sealed:v1:` form) opened when it was sealed
    /// for `subject`; another person's stays unread.
    private func opened(_ body: JSONValue, reference: String, subject: UUID, _ personalData: PersonalData) async throws -> JSONValue {
        switch body {
        case .object(var members):
            // Daraja's `{"Key": ..., "Value": ...}` and `{"Name": ..., "Value": ...}` parameters.
            if case .string(let key)? = members["Key"] ?? members["Name"], case .string(let stored)? = members["Value"], stored.hasPrefix(SealedText.prefix) {
                members["Value"] = .string(try await self.payerName(stored, reference: reference, key: key, subject: subject, personalData))
                return .object(members)
            }
            for (key, value) in members {
                if case .string(let stored) = value, stored.hasPrefix(SealedText.prefix) {
                    members[key] = .string(try await self.payerName(stored, reference: reference, key: key, subject: subject, personalData))
                } else {
                    members[key] = try await self.opened(value, reference: reference, subject: subject, personalData)
                }
            }
            return .object(members)
        case .array(let items):
            var opened: [JSONValue] = []
            for item in items { opened.append(try await self.opened(item, reference: reference, subject: subject, personalData)) }
            return .array(opened)
        default:
            return body
        }
    }

    private func payerName(_ stored: String, reference: String, key: String, subject: UUID, _ personalData: PersonalData) async throws -> String {
        guard let sealed = SealedText(parsing: stored), sealed.subject == subject else { return "[another person]" }
        do {
            return try await personalData.open(sealed.box, for: subject, at: .providerPayload(reference: reference, key: key)) ?? "[erased]"
        } catch PersonalDataError.doesNotOpen, PersonalDataError.malformed {
            // Sealed for them under another payment's reference (a body kept twice): said, not guessed.
            return "[sealed for another record]"
        }
    }
}
