import Basics
import Foundation
import GatewayTelemetry
import Logging
import MPesaBook
import NIOSSL
import ServiceLifecycle

/// The gauges an operator is woken by, refreshed by each replica on a schedule:
/// - every `probeInterval`, `gateway_dependency_up{dependency}`: whether Redis and Postgres
///   answered this replica (the readiness checks, ``HealthRoutes/dependencyProblems()``);
/// - every `snapshotInterval`, the SMS outbox's backlog and oldest age, the payouts and deposits in
///   flight and their oldest, the review queue by kind and the float (``MPesaBook/operationsSnapshot()``);
///   every replica reads the same database, so each reports the same figures (rules take `max`);
/// - once, when each certificate the gateway reads expires (`gateway_tls_certificate_expiry_timestamp_seconds`);
/// - with each probe, the process's own metrics (CPU, memory, descriptors: ``GatewayMetrics``).
struct OperationsGauges: Service {
    let health: HealthRoutes
    let book: MPesaBook
    let metrics: MetricCache
    let probeInterval: Duration
    let snapshotInterval: Duration
    /// Certificate files by the name the gauge gives them (`redis_ca`, `redis_client`, `postgres_root`, ...).
    let certificates: [String: String]
    /// Whether this replica asks Daraja for the float (`mpesa_float_watched`): the float-unknown
    /// alert applies only then.
    var floatWatched = false
    /// The ledger's currency: amounts are reported in its major units, labelled with its code.
    var currency = Currency.kenyanShilling
    let logger: Logger

    func run() async throws {
        self.recordCertificates()
        self.metrics.gauge("mpesa_float_watched").record(self.floatWatched ? 1 : 0)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.every(self.probeInterval) { await self.probe() } }
            group.addTask {
                await self.every(self.snapshotInterval) {
                    do {
                        try await self.refresh()
                    } catch {
                        self.logger.warning("operations gauges not refreshed; they keep their last values", metadata: ["error": .string(safeDescription(of: error))])
                    }
                }
            }
        }
    }

    private func every(_ interval: Duration, _ body: @Sendable () async -> Void) async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await body()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Probes each dependency once and sets its gauge; reads the process's own metrics from /proc
    /// (here, on the concurrency pool, rather than on the event loop that answers `/metrics`).
    func probe() async {
        GatewayMetrics.updateProcessMetrics()
        for (name, problem) in await self.health.dependencyProblems() {
            self.metrics.gauge("gateway_dependency_up", [("dependency", name)]).record(problem == nil ? 1 : 0)
            if let problem { self.logger.warning("dependency unreachable", metadata: ["dependency": .string(name), "problem": .string(problem)]) }
        }
    }

    /// Reads the snapshot once and sets its gauges.
    func refresh() async throws {
        let snapshot = try await self.book.operationsSnapshot()
        let currency = [("currency", self.currency.code)]
        self.metrics.gauge("sms_outbox_backlog").record(snapshot.outboxBacklog)
        self.metrics.gauge("sms_outbox_oldest_age_seconds").record(snapshot.outboxOldestAge)
        self.metrics.gauge("mpesa_payouts_in_flight").record(snapshot.payoutsInFlight)
        self.metrics.gauge("mpesa_payouts_in_flight_amount", currency).record(Double(snapshot.payoutsInFlightAmount.cents) / Double(self.currency.perMajor))
        self.metrics.gauge("mpesa_payouts_oldest_age_seconds").record(snapshot.payoutsOldestAge)
        self.metrics.gauge("mpesa_deposits_awaiting").record(snapshot.depositsAwaiting)
        self.metrics.gauge("mpesa_deposits_oldest_age_seconds").record(snapshot.depositsOldestAge)
        for (kind, open) in snapshot.review {
            self.metrics.gauge("mpesa_review_open", [("kind", kind)]).record(open.count)
            self.metrics.gauge("mpesa_review_oldest_age_seconds", [("kind", kind)]).record(open.oldestAge)
        }
        // No reading yet: no series, which the float-unknown alert sees as absent.
        if let float = snapshot.float {
            self.metrics.gauge("mpesa_float_balance", [("currency", float.currency)]).record(Double(float.available.cents) / 100)
            self.metrics.gauge("mpesa_float_reported_timestamp_seconds").record(float.reportedAt.timeIntervalSince1970)
        }
    }

    /// Sets each certificate file's expiry: a client certificate's own (the chain's first); a CA
    /// file's earliest, unless it is a bundle of many roots (the system's), whose oldest would
    /// always be near its end and say nothing of this deployment.
    func recordCertificates() {
        for (name, path) in self.certificates {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(path)
                let expiries = name.hasSuffix("_client") ? chain.prefix(1).map(\.notValidAfter) : chain.count > 10 ? [] : chain.map(\.notValidAfter)
                guard let earliest = expiries.min() else { continue }
                self.metrics.gauge("gateway_tls_certificate_expiry_timestamp_seconds", [("certificate", name)]).record(Double(earliest))
            } catch {
                self.logger.warning("certificate not read for its expiry gauge", metadata: ["certificate": .string(name)])
            }
        }
    }
}

extension GatewayConfig {
    /// The certificate files the gateway reads, by the name their expiry gauge gives them: Redis'
    /// CA and client certificate, and Postgres' root and client certificates from `DATABASE_URL`
    /// (`sslrootcert`, `sslcert`; libpq's `system` root store names no file).
    var certificateFiles: [String: String] {
        var files: [String: String] = [:]
        files["redis_ca"] = self.redis.tlsCAFile
        files["redis_client"] = self.redis.tlsCertificateFile
        let options = self.postgres.declaredOptions
        if let root = options["sslrootcert"], root != "system" { files["postgres_root"] = root }
        files["postgres_client"] = options["sslcert"]
        files["admin"] = self.desk.tlsCertificateFile
        return files
    }
}
