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
        // A Patroni cluster's URL: every node, and the database they serve.
        let cluster = PostgresConfiguration(
            connectionString: "postgres://ussd_app@pg-0.db:5432,pg-1.db:5432,pg-2.db:5432/wallet_bench?target_session_attrs=read-write&sslmode=verify-full"
        )
        #expect(cluster.declaredTransport.hosts == ["pg-0.db", "pg-1.db", "pg-2.db"])
        #expect(cluster.declaredOptions["dbname"] == "wallet_bench" && cluster.declaredOptions["target_session_attrs"] == "read-write")
    }
}
