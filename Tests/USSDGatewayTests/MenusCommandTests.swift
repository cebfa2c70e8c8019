import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import Menus
@testable import MPesaGateway
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway

@Suite struct MenusCommandTests {

    /// A copy of the default file with one screen pointing nowhere and one action unknown.
    static func brokenMenus() throws -> String {
        var json = try String(contentsOfFile: RepoFiles.menus, encoding: .utf8)
        json = json.replacingOccurrences(of: "\"next\": \"bal.show\"", with: "\"next\": \"bal.shown\"")
        json = json.replacingOccurrences(of: "\"action\": \"wallet.statement\"", with: "\"action\": \"wallet.history\"")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("menus-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func defaultMenusPassLintAgainstTheGatewaysActions() throws {
        let graph = try loadCheckedMenus(at: RepoFiles.menus)
        #expect(graph.document.screens.count > 50)
    }

    @Test func lintExitsZeroOnTheDefaultFileAndOneWithAProblemPerLine() async throws {
        let clean = try ChildProcess.start(GatewayBinary.path, ["menus", "lint", RepoFiles.menus])
        #expect(await clean.wait() == 0, "\(clean.output)")
        #expect(clean.output.isEmpty)

        let broken = try Self.brokenMenus()
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let dirty = try ChildProcess.start(GatewayBinary.path, ["menus", "lint", broken])
        #expect(await dirty.wait() == 1)
        let lines = dirty.output.split(separator: "\n").map(String.init)
        #expect(lines.contains("bal.do: next leads to bal.shown, which does not exist"))
        #expect(lines.contains("stmt.do: unknown action wallet.history"))
        #expect(lines.contains("bal.show: unreachable from the start screen"))
    }

    @Test func graphPrintsAMermaidStateDiagram() async throws {
        let child = try ChildProcess.start(GatewayBinary.path, ["menus", "graph", RepoFiles.menus, "--language", "sw"])
        #expect(await child.wait() == 0)
        #expect(child.output.hasPrefix("stateDiagram-v2\n    [*] --> start\n"))
        #expect(child.output.contains("main --> bal_pin : 1 Angalia Salio"))
        #expect(child.output.contains("send_do --> funds_end : insufficient_funds"))
    }

    @Test func serveRefusesToStartOnAMenusFileWithProblems() async throws {
        let broken = try Self.brokenMenus()
        defer { try? FileManager.default.removeItem(atPath: broken) }
        var environment = ProcessInfo.processInfo.environment
        environment["MENUS_PATH"] = broken
        environment["ENVIRONMENT"] = "development"
        environment["HTTP_PORT"] = "0"
        let child = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        #expect(await child.wait() == 2)
        #expect(child.errorOutput.hasPrefix("ussd-gateway: refusing to start: \(broken) has "), "\(child.errorOutput)")
        #expect(child.errorOutput.contains("  stmt.do: unknown action wallet.history"))
    }
}
