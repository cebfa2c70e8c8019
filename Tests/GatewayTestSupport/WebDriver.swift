import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import MPesaGateway
@testable import SMSChannel
import TestSupport
@testable import USSDChannel

/// A headless Chromium driven through chromedriver's W3C WebDriver HTTP protocol (Debian's
/// `chromium` and `chromium-driver`): plain JSON over HTTP, spoken here with our own libcurl client.
struct WebDriver {
    static let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// Both are installed (`make test` installs them when it can).
    static var available: Bool { Self.chromedriver != nil && Self.chromium != nil }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let driver: ChildProcess
    let base: String
    let session: String
    let http: CurlClient

    /// Starts chromedriver on a free port and opens a headless browser window of `width` x `height`.
    static func start(width: Int = 1280, height: Int = 1000) async throws -> WebDriver {
        guard let chromedriver = Self.chromedriver, let chromium = Self.chromium else { throw Failure(description: "chromium or chromedriver missing") }
        let port = try await PrivateServer.freePort()
        let driver = try ChildProcess.start(chromedriver, ["--port=\(port)"], environment: ProcessInfo.processInfo.environment)
        let http = CurlClient()
        let base = "http://127.0.0.1:\(port)"
        let ready = try await eventually(within: .seconds(30), every: .milliseconds(50)) {
            (try? await http.execute(CurlRequest(url: base + "/status", timeout: .seconds(2))))?.status == 200
        }
        guard ready else { throw Failure(description: "chromedriver never answered: \(driver.errorOutput)") }
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": chromium,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=\(width),\(height)", "--lang=en-GB"],
                    ],
                ]
            ]
        ]
        let value = try await Self.call(http, "POST", base + "/session", capabilities)
        guard let session = (value as? [String: Any])?["sessionId"] as? String else { throw Failure(description: "no session: \(value)") }
        return WebDriver(driver: driver, base: base, session: session, http: http)
    }

    /// One WebDriver command; its `value`.
    @discardableResult
    static func call(_ http: CurlClient, _ method: String, _ url: String, _ body: [String: Any]? = nil) async throws -> Any {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let response = try await http.execute(
            CurlRequest(
                method: method, url: url, headers: [("Content-Type", "application/json; charset=utf-8")], body: data.map { Array($0) } ?? (method == "POST" ? Array("{}".utf8) : []),
                timeout: .seconds(60)
            )
        )
        let json = try JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed]) as? [String: Any]
        guard response.status == 200 else { throw Failure(description: "\(method) \(url): \(response.status) \(response.text.prefix(300))") }
        return json?["value"] ?? NSNull()
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any {
        try await Self.call(self.http, method, self.base + "/session/\(self.session)" + path, body)
    }

    func go(_ url: String) async throws { try await self.call("POST", "/url", ["url": url]) }

    func element(_ css: String) async throws -> String {
        let value = try await self.call("POST", "/element", ["using": "css selector", "value": css])
        guard let id = (value as? [String: Any])?["element-6066-11e4-a52e-4f735466cecf"] as? String else { throw Failure(description: "no element \(css): \(value)") }
        return id
    }

    func click(_ css: String) async throws { try await self.call("POST", "/element/\(try await self.element(css))/click") }

    /// Clears a text field and types `text` into it, key by key, as a person would.
    func type(_ css: String, _ text: String) async throws {
        let id = try await self.element(css)
        try await self.call("POST", "/element/\(id)/clear")
        try await self.call("POST", "/element/\(id)/value", ["text": text])
    }

    func text(_ css: String) async throws -> String { try await self.call("GET", "/element/\(try await self.element(css))/text") as? String ?? "" }

    func script(_ source: String) async throws -> Any { try await self.call("POST", "/execute/sync", ["script": source, "args": [Any]()]) }

    /// The window as PNG.
    func screenshot() async throws -> Data {
        guard let encoded = try await self.call("GET", "/screenshot") as? String, let data = Data(base64Encoded: encoded) else {
            throw Failure(description: "no screenshot")
        }
        return data
    }

    func quit() async {
        _ = try? await Self.call(self.http, "DELETE", self.base + "/session/\(self.session)")
        self.driver.signal(SIGTERM)
        _ = await self.driver.wait()
        await self.http.shutdown()
    }
}
