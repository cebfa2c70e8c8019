import Curl
import Foundation
import Testing
import TestSupport

/// The shipped `deploy/haproxy.cfg`, run by the real haproxy in front of one test gateway: only the
/// addresses differ (loopback ports for its listeners, the gateway's port for the replicas and their
/// health check, no Docker resolver) and the certificate is one made for 127.0.0.1. Every
/// substitution must find its text, so a change to the shipped file cannot quietly leave the test
/// running something else.
final class EdgeProxy: Sendable {
    let process: ChildProcess
    let plainPort: Int
    let tlsPort: Int
    let directory: URL
    /// The proxy's certificate, the only one its clients trust.
    let certificate: String

    var plainURL: String { "http://127.0.0.1:\(self.plainPort)" }
    var tlsURL: String { "https://127.0.0.1:\(self.tlsPort)" }

    /// `haproxy` and `openssl` where Debian puts them (sbin is not on every user's PATH).
    static let haproxy = EdgeProxy.executable("haproxy")
    static let openssl = EdgeProxy.executable("openssl")

    static var shippedConfiguration: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/haproxy.cfg").path
    }

    private init(process: ChildProcess, plainPort: Int, tlsPort: Int, directory: URL, certificate: String) {
        self.process = process
        self.plainPort = plainPort
        self.tlsPort = tlsPort
        self.directory = directory
        self.certificate = certificate
    }

    /// Runs `body` with haproxy in front of the gateway listening on `gatewayPort`, stops haproxy
    /// however `body` ends, and returns what haproxy logged.
    @discardableResult
    static func run(gatewayPort: Int, _ body: (EdgeProxy) async throws -> Void) async throws -> String {
        let edge = try await Self.start(gatewayPort: gatewayPort)
        do {
            try await body(edge)
        } catch {
            await edge.stop()
            throw error
        }
        return await edge.stop()
    }

    /// Starts haproxy and waits until a request through it reaches the gateway.
    private static func start(gatewayPort: Int) async throws -> EdgeProxy {
        guard let haproxy = Self.haproxy, let openssl = Self.openssl else { throw TestSetupError("haproxy or openssl is not installed") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = directory.appendingPathComponent("key.pem").path
        let certificate = directory.appendingPathComponent("certificate.pem").path
        try await ChildProcess.run(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate,
            ])
        let bundle = directory.appendingPathComponent("gateway.pem")
        try Data((try String(contentsOfFile: certificate, encoding: .utf8) + (try String(contentsOfFile: key, encoding: .utf8))).utf8).write(
            to: bundle)

        let plainPort = try await PrivateServer.freePort()
        var tlsPort = try await PrivateServer.freePort()
        while tlsPort == plainPort { tlsPort = try await PrivateServer.freePort() }
        var statsPort = try await PrivateServer.freePort()
        while statsPort == plainPort || statsPort == tlsPort { statsPort = try await PrivateServer.freePort() }

        var text = try String(contentsOfFile: Self.shippedConfiguration, encoding: .utf8)
        func replace(_ old: String, _ new: String) throws {
            guard text.contains(old) else { throw TestSetupError("deploy/haproxy.cfg no longer holds \(old.debugDescription)") }
            text = text.replacingOccurrences(of: old, with: new)
        }
        // The test runner's descriptor limit is below what 20000 connections need; a stop must not
        // wait on a connection left open.
        try replace("    maxconn 20000\n", "    maxconn 1000\n    hard-stop-after 10s\n")
        try replace("resolvers docker\n    nameserver dns1 127.0.0.11:53\n    hold valid 10s\n    accepted_payload_size 8192\n\n", "")
        try replace("    bind *:8080\n", "    bind 127.0.0.1:\(plainPort)\n")
        try replace("    bind *:8443 ssl crt /run/secrets/gateway.pem ", "    bind 127.0.0.1:\(tlsPort) ssl crt \(bundle.path) ")
        try replace("    bind *:8404\n", "    bind 127.0.0.1:\(statsPort)\n")
        try replace(" check port 9090 ", " check port \(gatewayPort) ")
        try replace(" resolvers docker init-addr last,libc,none\n", "\n")
        try replace(
            "    server gateway1 gateway1:8080\n    server gateway2 gateway2:8080\n    server gateway3 gateway3:8080\n",
            "    server gateway1 127.0.0.1:\(gatewayPort)\n"
        )
        let configuration = directory.appendingPathComponent("haproxy.cfg").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: configuration))

        // -db: in the foreground, its log on this process's standard output.
        let process = try ChildProcess.start(haproxy, ["-db", "-f", configuration])
        let edge = EdgeProxy(process: process, plainPort: plainPort, tlsPort: tlsPort, directory: directory, certificate: certificate)
        var ready: CurlResponse?
        _ = try await eventually(within: .seconds(30), every: .milliseconds(50)) {
            ready = try? await edge.send(edge.tlsURL + "/healthz", method: "GET")
            return ready?.status == 200
        }
        guard ready?.status == 200 else {
            await edge.stop()
            throw TestSetupError("haproxy did not pass a request to the gateway: \(process.errorOutput)")
        }
        return edge
    }

    /// A request by a client of its own, trusting the proxy's certificate and following no
    /// redirect; the client and its connection are gone when it returns, so none is left open to
    /// hold up a soft stop (HTTP/2 ignores `Connection: close`).
    func send(_ url: String, method: String = "POST", headers: [(name: String, value: String)] = [], body: String? = nil) async throws -> CurlResponse
    {
        var settings = CurlConfiguration()
        settings.caBundlePath = self.certificate
        let client = CurlClient(configuration: settings)
        do {
            let response = try await client.execute(
                CurlRequest(method: method, url: url, headers: headers, body: body.map { Array($0.utf8) }, timeout: .seconds(20)))
            await client.shutdown()
            return response
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Lets haproxy finish what it serves (SIGUSR1, a soft stop: every request it took is logged
    /// by then) and returns everything it logged.
    @discardableResult
    private func stop() async -> String {
        self.process.signal(SIGUSR1)
        _ = await self.process.wait()
        try? FileManager.default.removeItem(at: self.directory)
        return self.process.output
    }

    private static func executable(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (path + ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]).map { $0 + "/" + name }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
