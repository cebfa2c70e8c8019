import Postgres
import Testing
import TestSupport

@Suite struct PostgresTransportTests {
    @Test func theLocalTestServerSpeaksWithoutTLS() async throws {
        // Given the throwaway Postgres of make test (no certificate, so libpq's default `prefer` falls back to plain)
        let postgres = PostgresClient(configuration: try TestServers.postgresConfiguration())

        // When a connection reports how it travels
        let transport = try await postgres.transport()

        // Then libpq says it is not encrypted, on 127.0.0.1, with the default sslmode
        #expect(transport.encrypted == false)
        #expect(transport.hosts == ["127.0.0.1"])
        #expect(transport.sslMode == "prefer")
        await postgres.shutdown()
    }

    @Test func theConnectionStringNamesItsHostsAndSSLMode() {
        let url = PostgresConfiguration(connectionString: "postgres://ussd:secret@db.internal:5432/ussd?sslmode=verify-full").declaredTransport
        #expect(url == PostgresTransport(hosts: ["db.internal"], sslMode: "verify-full", encrypted: nil))
        let keywords = PostgresConfiguration(connectionString: "host=10.0.0.5,10.0.0.6 dbname=ussd sslmode=require").declaredTransport
        #expect(keywords.hosts == ["10.0.0.5", "10.0.0.6"] && keywords.sslMode == "require")
        let socket = PostgresConfiguration(connectionString: "postgresql:///ussd?host=/var/run/postgresql").declaredTransport
        #expect(socket.hosts == ["/var/run/postgresql"])
    }
}
