import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import Menus

/// Loads a menus file and lints it against ``ActionTable`` (its `http` actions against the hop
/// deadline): a file with any problem is refused.
public func loadCheckedMenus(at path: String, hopDeadline: Duration = .milliseconds(4000)) throws -> MenuGraph {
    let graph = try MenuGraph.load(contentsOf: URL(fileURLWithPath: path))
    let problems = graph.lint(actions: ActionTable.specs, hopDeadlineMilliseconds: Int(hopDeadline.inMilliseconds))
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
