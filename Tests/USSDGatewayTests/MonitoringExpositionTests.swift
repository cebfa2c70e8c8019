import Basics
import Curl
import Foundation
@testable import GatewayTelemetry
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Sandbox
import Testing
import TestSupport
@testable import USSDGateway

/// `/metrics` as Prometheus' own tool reads it, the metric names the shipped rules and dashboard
/// use (deploy/monitoring), and a hop's trace carried into the Daraja call it makes.
@Suite struct MonitoringExpositionTests {
    /// Debian's `promtool` (package `prometheus`), if installed: `make test` installs it; a test
    /// that needs it says so where it cannot run.
    static let promtool: String? = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: promtool != nil, "promtool is not installed (apt-get install prometheus)"))
    func promtoolFindsNothingToComplainAboutInMetricsAfterTheJourneys() async throws {
        let harness = try await MonitoringTests.harness()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Otieno", pin: TypedPINs.otieno)
        let http = CurlClient()
        try await harness.serve { base in
            var phone = SimulatedPhone(url: base + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http)!
            _ = try await SandboxTests.mobileMoney(&phone, "2", shillings: 500, pin: TypedPINs.otieno)
            #expect(try await SandboxTests.eventually { try await SandboxTests.available(harness, msisdn) == 500 })
            _ = try await SandboxTests.mobileMoney(&phone, "3", shillings: 100, pin: TypedPINs.otieno)
            #expect(try await SandboxTests.payoutsOnceSettled(harness, ["paid"]) == ["100 paid"])
            // The gauges of the float and the payouts, and a scrape's process metrics.
            var exposition = ""
            #expect(try await SandboxTests.eventually {
                exposition = String(decoding: try await http.execute(CurlRequest(url: base + "/metrics", timeout: .seconds(5))).body, as: UTF8.self)
                return exposition.contains("mpesa_float_balance{") && exposition.contains("wallet_money_total{")
            })
            for family in ["process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds", "gateway_dependency_up", "ussd_hops_total",
                           "mpesa_request_duration_seconds_bucket", "db_pool_wait_duration_seconds_bucket", "sms_outbox_backlog", "wallet_journeys_total"]
            {
                #expect(exposition.contains("\n" + family), "\(family) is exported")
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).txt").path
            try exposition.write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let check = try ChildProcess.start("/bin/sh", ["-c", "\(Self.promtool!) check metrics < \(file)"])
            let status = await check.wait()
            #expect(status == 0 && check.output.isEmpty && check.errorOutput.isEmpty, "promtool check metrics: \(check.output)\(check.errorOutput)")
        }
        await http.shutdown()
        await harness.finish()
    }

    /// Every metric the shipped alerts, recording rules and dashboard name is one the gateway
    /// exports (``MetricHelp`` names each family it exports), so a renamed metric fails here
    /// rather than silently emptying a panel or an alert.
    @Test func everyMetricTheRulesAndTheDashboardNameIsOneTheGatewayExports() async throws {
        // The deploy tools' Python (with PyYAML, made by `make deploy-check`, which `make test` runs first), else the system's.
        let venv = ".build/deploy-tools/bin/python"
        let python = FileManager.default.isExecutableFile(atPath: venv) ? [venv] : ["/usr/bin/env", "python3"]
        let names = try await ChildProcess.run(python[0], Array(python.dropFirst()) + ["scripts/monitoring.py", "names"])
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        #expect(names.count > 20, "\(names)")
        let unknown = names.filter { name in
            MetricHelp.texts[name] == nil && !["_bucket", "_count", "_sum"].contains { name.hasSuffix($0) && MetricHelp.texts[String(name.dropLast($0.count))] != nil }
        }
        #expect(unknown.isEmpty, "named by deploy/monitoring but not exported: \(unknown)")
        #expect(MetricHelp.texts.values.allSatisfy { !$0.isEmpty && !$0.contains("\n") })
    }

    /// A hop that arrives with a W3C `traceparent` is answered in that trace: its request id is
    /// the trace id, and the STK push it causes carries the same trace with a span of its own.
    @Test func aHopsTraceIsCarriedIntoItsDarajaCall() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        _ = try await rig.harness.customer(local, name: "Wanjiru", pin: TypedPINs.achieng)
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        try await rig.harness.run(.live) { client in
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.dial()
            _ = try await phone.type("2")
            _ = try await phone.type("500")
            _ = try await phone.type("1")
            phone.inputs.append(TypedPINs.achieng)
            let response = try await client.execute(
                uri: phone.path, method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("traceparent")!: "00-\(trace)-00f067aa0ba902b7-01"],
                body: ByteBuffer(string: Phone.form([
                    "sessionId": phone.session, "phoneNumber": phone.number, "networkCode": "63902", "serviceCode": phone.serviceCode, "text": phone.text,
                ]))
            )
            #expect(String(buffer: response.body).hasPrefix("END Check your phone"))
            #expect(response.headers[HTTPField.Name("X-Request-Id")!] == trace, "the request id is the trace id")
            let push = try await rig.request("/mpesa/stkpush/v1/processrequest")
            let parts = try #require(push.traceparent?.split(separator: "-").map(String.init))
            #expect(parts.count == 4 && parts[0] == "00" && parts[1] == trace, "\(push.traceparent ?? "none")")
            #expect(parts.count == 4 && parts[2] != "00f067aa0ba902b7" && parts[2].count == 16, "a span of its own")
            // A hop without one starts a trace of its own.
            _ = try await phone.dial()
        }
        await rig.finish()
    }
}
