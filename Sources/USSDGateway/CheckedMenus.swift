import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import Menus
import Settings

/// Loads a menus file and lints it against ``ActionTable`` (its `http` actions against the hop
/// deadline): a file with any problem is refused.
public func loadCheckedMenus(
    at path: String, hopDeadline: Duration = .milliseconds(4000), backendVariables: BackendVariables = BackendVariables(), market: Market = .kenya
) throws -> MenuGraph {
    let graph = try MenuGraph.load(contentsOf: URL(fileURLWithPath: path), market: market)
    let problems = graph.lint(actions: ActionTable.specs, hopDeadlineMilliseconds: Int(hopDeadline.inMilliseconds), backendVariables: backendVariables)
    guard problems.isEmpty else { throw MenuProblems(path: path, problems: problems) }
    return graph
}

/// A menus file that failed lint; its description lists every problem, one per line.
public struct MenuProblems: Error, CustomStringConvertible {
    public let path: String
    public let problems: [LintProblem]
    public var description: String {
        "\(self.path) has \(self.problems.count) problem(s) (run `ussd-gateway menus lint`):\n" + self.problems.map { "  \($0)" }.joined(separator: "\n")
    }
}

extension GatewayConfig {
    /// Why these backends must not be called in production: a URL (known only from the environment)
    /// in plain `http` to a host other than this machine would carry the backend's key and the
    /// customer's data in clear. Nil in development, and when every backend is `https` or loopback.
    public func backendTransportProblem(_ document: MenuDocument) -> ConfigError? {
        guard self.environment == .production else { return nil }
        for (_, backend) in (document.backends ?? [:]).sorted(by: { $0.key < $1.key }) where backend.url.hasPrefix("env:") {
            let variable = String(backend.url.dropFirst(4))
            guard let url = self.backendValues[variable], let components = URLComponents(string: url) else { continue }
            if components.scheme?.lowercased() == "http", !isLoopback(components.host ?? "") {
                return ConfigError(
                    variable: variable, problem: "is plain http to \(components.host ?? "?"): in production a backend is reached over https (plain http only to loopback)")
            }
        }
        return nil
    }
}
