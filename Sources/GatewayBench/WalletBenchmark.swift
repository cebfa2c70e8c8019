import Basics
import Foundation
import GatewayActions
import MPesaBook
import Postgres
import USSDGateway
import Wallet

/// Wallet throughput for `gateway-bench wallet`: sends among 10,000 funded customers, and
/// deposit completions, which all credit through the one M-Pesa float account (the hot row).
public enum WalletBenchmark {
    /// Migrates the database and bulk-creates `customers` customers (``number(_:)`` 1 to
    /// `customers`) with 40,000 shillings each (under every tier's maximum balance in menus.json), unlocked,
    /// with the PIN `pin` under `pins`' newest key (by default a value no PIN matches). Only those
    /// seeded numbers are touched: their PIN values, locks and funding.
    static func prepare(_ postgres: PostgresClient, customers: Int, pins: PINVault? = nil, pin: String = "0000") async throws {
        let pinHash = "unset"
        try await postgres.migrate(try WalletMigrations.all())
        let seeded = "'2547' || lpad(g::text, 8, '0')"
        try await postgres.query(
            """
            INSERT INTO customers (msisdn, name, language, pin_hash)
            SELECT \(unescaped: seeded), 'Customer ' || g, 'en', \(pinHash)
            FROM generate_series(1, \(customers)) g ON CONFLICT DO NOTHING
            """
        )
        try await postgres.query(
            """
            UPDATE customers SET failed_pin_attempts = 0, locked_until = NULL, pin_hash = \(pinHash)
            WHERE msisdn IN (SELECT \(unescaped: seeded) FROM generate_series(1, \(customers)) g)
                AND (pin_hash <> \(pinHash) OR failed_pin_attempts > 0 OR locked_until IS NOT NULL)
            """
        )
        try await postgres.query(
            """
            INSERT INTO accounts (customer_id, kind)
            SELECT c.id, v.kind FROM customers c, (VALUES ('main'), ('savings')) v(kind)
            WHERE c.msisdn IN (SELECT \(unescaped: seeded) FROM generate_series(1, \(customers)) g)
            ON CONFLICT DO NOTHING
            """
        )
        try await postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
            SELECT 'bench-fund-' || a.id, f.id, a.id, 4000000, 'deposit', 'posted'
            FROM accounts a JOIN customers c ON c.id = a.customer_id, accounts f
            WHERE a.kind = 'main' AND f.customer_id IS NULL AND f.kind = 'mpesa_float'
                AND c.msisdn IN (SELECT \(unescaped: seeded) FROM generate_series(1, \(customers)) g)
            ON CONFLICT DO NOTHING
            """
        )
        if let pins {
            // Each customer's value names their id: made here (a microsecond each under a software key).
            let ids = try await postgres.query(
                "SELECT id FROM customers WHERE msisdn IN (SELECT \(unescaped: seeded) FROM generate_series(1, \(customers)) g)"
            ).map { try $0.decode(Int64.self, column: 0) }
            for start in stride(from: 0, to: ids.count, by: 5_000) {
                let slice = Array(ids[start..<min(ids.count, start + 5_000)])
                var pairs: [String] = []
                for id in slice { pairs.append("{\"id\":\(id),\"value\":\"\(try await pins.value(for: pin, customer: id))\"}") }
                let json = "[" + pairs.joined(separator: ",") + "]"
                try await postgres.query(
                    "UPDATE customers c SET pin_hash = v.value FROM jsonb_to_recordset(\(json)::jsonb) AS v(id bigint, value text) WHERE c.id = v.id"
                )
            }
        }
        try await postgres.query("ANALYZE")
    }

    static func number(_ index: Int) -> MSISDN { MSISDN("2547" + String(format: "%08d", index))! }

    public static func run(
        _ configuration: PostgresConfiguration, concurrency: Int, sends: Int, deposits: Int, customers: Int = 10_000,
        groupCommit: Wallet.GroupCommit = Wallet.GroupCommit()
    ) async throws -> [ClientBenchmark.Result] {
        var configuration = try BenchmarkDatabase.checked(configuration)
        configuration.poolSize = concurrency
        // Bulk-creating 10,000 funded customers takes longer than the service's statement timeout.
        configuration.statementTimeout = nil
        let postgres = PostgresClient(configuration: configuration)
        try await self.prepare(postgres, customers: customers)
        let pins = PINVault(key: SoftwarePINKeys.randomKey())
        let wallet = Wallet(postgres: postgres, pins: pins, groupCommit: groupCommit)
        // The same wallet with group commit off: every send its own commit, as before migration 0010.
        let alone = Wallet(postgres: postgres, pins: pins, groupCommit: .off)
        let (book, aloneBook) = (MPesaBook(wallet: wallet), MPesaBook(wallet: alone))
        let run = UUID().uuidString.prefix(8)

        let sendOne: @Sendable (Wallet, String) async throws -> Void = { wallet, tag in
            let from = Int.random(in: 1...customers)
            var to = Int.random(in: 1...customers)
            while to == from { to = Int.random(in: 1...customers) }
            _ = try await wallet.send(from: number(from), to: number(to), amount: .shillings(100), key: IdempotencyKey("bench-\(tag)-\(run)-\(UUID().uuidString)")!)
        }
        let each = try await ClientBenchmark.measure("wallet sends, a commit each (\(customers) customers)", concurrency: concurrency, total: sends) { _ in
            try await sendOne(alone, "each")
        }
        let sent = try await ClientBenchmark.measure(
            "wallet sends, group commit (\(groupCommit.lanes) lanes, batches up to \(groupCommit.maximumBatch))", concurrency: concurrency, total: sends
        ) { _ in
            try await sendOne(wallet, "group")
        }

        // The same with the tariff's fee for a 500-shilling send (7 shillings), posted to fee income in the
        // same transaction: two transfers per send.
        let paying = try await ClientBenchmark.measure("fee-paying sends (7 shillings to fee income)", concurrency: concurrency, total: sends) { index in
            let from = Int.random(in: 1...customers)
            var to = Int.random(in: 1...customers)
            while to == from { to = Int.random(in: 1...customers) }
            _ = try await wallet.send(
                from: number(from), to: number(to), amount: .shillings(500), fee: .shillings(7), key: IdempotencyKey("bench-fee-\(run)-\(UUID().uuidString)")!
            )
        }

        // Deposits waiting for their callbacks, then the callbacks timed: half with a commit each,
        // half with group commit.
        let pending = try await withThrowingTaskGroup(of: String.self) { group in
            var checkouts: [String] = []
            for index in 0..<(2 * deposits) {
                group.addTask {
                    let deposit = try await book.beginDeposit(number(index % customers + 1), amount: .shillings(250), key: IdempotencyKey("bench-dep-\(run)-\(index)")!)
                    let checkout = "ws_CO_\(run)_\(index)"
                    try await book.recordCheckout(depositID: deposit.id, checkoutRequestID: checkout)
                    return checkout
                }
                if index >= concurrency, let checkout = try await group.next() { checkouts.append(checkout) }
            }
            return try await group.reduce(into: checkouts) { $0.append($1) }
        }
        let checkouts = pending.sorted()
        let complete: @Sendable (MPesaBook, String, Int) async throws -> Void = { book, checkout, index in
            let customer = Int(checkout.split(separator: "_").last!)! % customers + 1
            _ = try await book.completeDeposit(checkoutRequestID: checkout, receipt: "R\(run)\(index)", amount: .shillings(250), phone: number(customer))
        }
        let creditedEach = try await ClientBenchmark.measure("deposit completions, a commit each (one float account)", concurrency: concurrency, total: deposits) { index in
            try await complete(aloneBook, checkouts[index], index)
        }
        let credited = try await ClientBenchmark.measure("deposit completions, group commit (one float account)", concurrency: concurrency, total: deposits) { index in
            try await complete(book, checkouts[deposits + index], deposits + index)
        }
        let sum = try await postgres.query("SELECT sum(balance)::bigint FROM account_balances").single()!.decode(Int64.self, column: 0)
        precondition(sum == 0, "the ledger does not balance after the benchmark")
        await postgres.shutdown()
        return [each, sent, paying, creditedEach, credited]
    }
}
