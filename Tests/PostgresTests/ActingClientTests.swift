import Foundation
import Postgres
import Testing
import TestSupport

/// `PostgresClient.acting(as:)`: every statement runs as the role, the role ends with its
/// transaction (never left on a pooled connection), and what cannot switch roles is refused.
@Suite struct ActingClientTests {
    @Test func everyStatementActsAsTheRoleAndTheRoleEndsWithItsTransaction() async throws {
        var configuration = try await TestServers.freshDatabase("acting")
        configuration.poolSize = 1
        let postgres = PostgresClient(configuration: configuration)
        let role = "acting_" + UUID().uuidString.prefix(8).lowercased()
        try await postgres.query("CREATE ROLE \(unescaped: role) NOLOGIN")
        try await postgres.query("CREATE TABLE notes (id serial PRIMARY KEY, body text, written_by text NOT NULL DEFAULT current_user)")
        try await postgres.query("GRANT SELECT, INSERT ON notes TO \(unescaped: role)")
        try await postgres.query("GRANT USAGE ON SEQUENCE notes_id_seq TO \(unescaped: role)")
        let login = try await postgres.query("SELECT current_user::text").single()!.decode(String.self, column: 0)
        let acting = postgres.acting(as: role)

        #expect(try await acting.query("SELECT current_user::text").single()!.decode(String.self, column: 0) == role)
        #expect(try await postgres.query("SELECT current_user::text").single()!.decode(String.self, column: 0) == login, "the one connection is the login's again")
        // A transaction of its own, with its isolation level, still as the role.
        let seen = try await acting.transaction(isolation: .serializable) { tx in
            try await tx.query("SELECT current_user::text, current_setting('transaction_isolation')").single()!.decode((String, String).self)
        }
        #expect(seen == (role, "serializable"))
        // withConnection is one transaction; a transaction inside it is a savepoint.
        try await acting.withConnection { connection in
            try await connection.query("INSERT INTO notes (body) VALUES ('kept')")
            await #expect(throws: PostgresError.self) {
                try await connection.transaction { tx in
                    try await tx.query("INSERT INTO notes (body) VALUES ('rolled back')")
                    try await tx.query("SELECT 1 / 0")
                }
            }
            try await connection.query("INSERT INTO notes (body) VALUES ('after')")
        }
        let notes = try await postgres.query("SELECT body, written_by FROM notes ORDER BY id").map { try $0.decode((String, String).self) }
        #expect(notes.map(\.0) == ["kept", "after"] && notes.allSatisfy { $0.1 == role })
        // A failed statement ends the role too.
        await #expect(throws: PostgresError.self) { try await acting.query("SELECT 1 / 0") }
        #expect(try await postgres.query("SELECT current_user::text").single()!.decode(String.self, column: 0) == login)
        // A role that does not exist, or a blocking connection, is refused.
        await #expect(throws: PostgresError.self) { try await postgres.acting(as: "no_such_role_at_all").query("SELECT 1") }
        await #expect(throws: PostgresError.self) { try await acting.withBlockingConnection { _ in 1 } }
        try await postgres.query("DROP TABLE notes")
        try await postgres.query("DROP ROLE \(unescaped: role)")
        await postgres.shutdown()
    }
}
