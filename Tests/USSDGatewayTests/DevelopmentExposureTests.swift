import Foundation
@testable import GatewayTestSupport
import Hummingbird
import HummingbirdTesting
import Settings
import TestSupport
import Testing

@testable import USSDGateway

/// Development switches every safeguard off, so it is not served to the outside: a non-loopback
/// `HTTP_HOST` is refused unless asked for, and then nothing simulated is served there.
@Suite struct DevelopmentExposureTests {
    @Test func developmentOnAPublicAddressExitsWith2AndOneLine() async throws {
        var environment = ProcessInfo.processInfo.environment
        for name in ["PIN_KEY", "PIN_KEY_FILE", "PIN_PEPPER", "DEVELOPMENT_LISTEN_PUBLIC", "SANDBOX", "SIMULATOR"] { environment[name] = nil }
        environment["ENVIRONMENT"] = "development"
        environment["HTTP_HOST"] = "0.0.0.0"
        environment["MENUS_PATH"] = RepoFiles.menus
        let child = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        #expect(await child.wait() == 2)
        let lines = child.errorOutput.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("ussd-gateway: configuration error: HTTP_HOST: is 0.0.0.0, not loopback"), "\(child.errorOutput)")
        #expect(lines.first?.contains("DEVELOPMENT_LISTEN_PUBLIC=1") == true)
    }

    @Test func withTheOptInNoSandboxAndNoBrowserPhoneAreServedThere() async throws {
        let development = ["ENVIRONMENT": "development", "HTTP_PORT": "0", "PIN_KEY": "1:" + String(repeating: "ab", count: 32)]
        // On loopback (the control): the browser phone and the sandbox answer.
        let local = try GatewayConfig.load(environment: development)
        #expect(local.sandbox.isOn && local.sandbox.simulator)
        let public_ = try GatewayConfig.load(environment: development.merging(["HTTP_HOST": "0.0.0.0", "DEVELOPMENT_LISTEN_PUBLIC": "1"]) { $1 })
        #expect(!public_.sandbox.isOn && !public_.sandbox.simulator && !public_.sandbox.jobs)
        let menus = try loadCheckedMenus(at: RepoFiles.menus)
        for (config, expected) in [(local, HTTPResponse.Status.ok), (public_, .notFound)] {
            var config = config
            config.redis = try TestServers.redisConfiguration()
            config.postgres = try TestServers.postgresConfiguration()
            let host = config.httpHost
            try await buildApplication(config: config, menus: menus).test(.router) { client in
                #expect(try await client.execute(uri: "/simulator", method: .get).status == expected, "\(host)")
                #expect(try await client.execute(uri: "/simulator/settings.json", method: .get).status == expected)
                let inbox = try await client.execute(uri: "/sandbox/inbox?phone=%2B254712345678", method: .get).status
                #expect(expected == .ok ? inbox != .notFound : inbox == .notFound, "\(inbox)")
                if expected == .notFound {
                    let paybill = try await client.execute(uri: "/sandbox/daraja/paybill", method: .post).status
                    #expect(paybill == .notFound)
                }
            }
        }
        // Asked for explicitly, a simulated provider or the phone on a public address is refused.
        for (variable, value) in [("SANDBOX", "on"), ("SIMULATOR", "on")] {
            let refused = #expect(throws: ConfigError.self) {
                try GatewayConfig.load(environment: development.merging(["HTTP_HOST": "0.0.0.0", "DEVELOPMENT_LISTEN_PUBLIC": "1", variable: value]) { $1 })
            }
            #expect(refused?.variable == variable)
        }
        #expect(isLoopback("127.0.0.1") && isLoopback("localhost") && isLoopback("::1") && isLoopback("127.8.9.10"))
        #expect(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.5") && !isLoopback("127.0.0.1.example.com") && !isLoopback("::"))
    }

    @Test func backendsGetOnlyTheirVariablesAndProductionRefusesAPlainHTTPBackend() async throws {
        let development = ["ENVIRONMENT": "development", "PIN_PEPPER": "a-pepper-of-some-length", "JOBS_API_URL": "https://jobs.example.com",
                           "BACKEND_PAYROLL_URL": "https://payroll.example.com", "PAYROLL_TOKEN": "t", "SOMETHING_ELSE": "x"]
        let config = try GatewayConfig.load(environment: development.merging(["BACKEND_ENV_ALLOW": "PAYROLL_TOKEN"]) { $1 })
        #expect(config.backendValues["JOBS_API_URL"] != nil && config.backendValues["BACKEND_PAYROLL_URL"] != nil && config.backendValues["PAYROLL_TOKEN"] != nil)
        #expect(config.backendValues["PIN_PEPPER"] == nil && config.backendValues["SOMETHING_ELSE"] == nil && config.backendValues["ENVIRONMENT"] == nil)
        for own in ["DATABASE_URL", "PIN_PEPPER", "HTTP_PORT"] {
            let refused = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: development.merging(["BACKEND_ENV_ALLOW": "PAYROLL_TOKEN,\(own)"]) { $1 }) }
            #expect(refused?.description == "BACKEND_ENV_ALLOW: names \(own), one of the gateway's own settings, which never leave it")
        }

        // The shipped menus.json's Jobs backend, its URL plain http to another host: refused in production.
        var environment = ProcessInfo.processInfo.environment
        for name in ["CALLBACK_TOKEN", "MPESA_CALLBACK_TOKEN", "PIN_PEPPER", "PIN_KEY_FILE", "SANDBOX", "SIMULATOR"] { environment[name] = nil }
        environment.merge([
            "ENVIRONMENT": "production", "PIN_KEY": ProductionSafetyTests.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": ProductionSafetyTests.atToken,
            "MENUS_PATH": RepoFiles.menus, "LOG_LEVEL": "warning", "HTTP_PORT": "0", "JOBS_API_URL": "http://jobs.example.com/api",
        ]) { $1 }
        let refused = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        #expect(await refused.wait() == 2)
        let lines = refused.errorOutput.split(separator: "\n").filter { !$0.contains("configuration changed since the last start") }
        #expect(lines.last == "ussd-gateway: configuration error: JOBS_API_URL: is plain http to jobs.example.com: in production a backend is reached over https (plain http only to loopback)", "\(refused.errorOutput)")
        // https, or plain http to this machine, is fine.
        var https = try GatewayConfig.load(environment: ["ENVIRONMENT": "production", "PIN_KEY": ProductionSafetyTests.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": ProductionSafetyTests.atToken, "JOBS_API_URL": "https://jobs.example.com"])
        let document = try loadCheckedMenus(at: RepoFiles.menus).document
        #expect(https.backendTransportProblem(document) == nil)
        https.backendValues["JOBS_API_URL"] = "http://127.0.0.1:9000"
        #expect(https.backendTransportProblem(document) == nil)
        https.backendValues["JOBS_API_URL"] = "http://10.1.2.3:9000"
        #expect(https.backendTransportProblem(document)?.variable == "JOBS_API_URL")
    }
}
