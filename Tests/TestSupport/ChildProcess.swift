import Foundation

/// A program a test runs: to completion (``run(_:_:)``) or in the background until ``stop()``.
///
/// Uses posix_spawn and waitpid of the one pid, with output in files: Foundation's `Process` did
/// not notice its children exiting inside the test runner, and a pipe would be held open by the
/// servers a script daemonises. Children start with no signal blocked (the test runner blocks
/// some), so the servers they start obey SIGTERM.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let outputPath: String
    private let errorPath: String

    private init(pid: pid_t, outputPath: String, errorPath: String) {
        self.pid = pid
        self.outputPath = outputPath
        self.errorPath = errorPath
    }

    deinit {
        self.removeFiles()
    }

    /// Starts `executable` and returns at once.
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ChildProcess {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)").path
        let outputPath = base + ".out"
        let errorPath = base + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var cArguments: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let environmentStrings = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = environmentStrings.map { strdup($0) } + [nil]
        defer { cEnvironment.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        guard spawned == 0 else { throw TestSetupError("posix_spawn \(executable) failed: \(spawned)") }
        return ChildProcess(pid: pid, outputPath: outputPath, errorPath: errorPath)
    }

    /// Runs `executable` to the end on a thread of its own; throws unless it exits 0.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> String {
        let child = try environment.map { try start(executable, arguments, environment: $0) } ?? start(executable, arguments)
        let status = await child.wait()
        guard status == 0 else {
            throw TestSetupError("\(executable) \(arguments.joined(separator: " ")) exited \(status): \(child.errorOutput)")
        }
        return child.output
    }

    /// Waits for the exit on a thread of its own (waitpid blocks); the exit code, or 128+signal.
    public func wait() async -> Int32 {
        let pid = self.pid
        return await withCheckedContinuation { continuation in
            Thread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                let signal = status & 0x7f
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xff : 128 + signal)
            }.start()
        }
    }

    /// Whether the process has exited (a zombie not waited for yet counts), read from `/proc`
    /// without reaping it, so ``wait()`` still gets its status.
    public var hasExited: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(self.pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
            let state = stat[close...].dropFirst(2).first
        else { return true }
        return state == "Z" || state == "X"
    }

    /// Sends `signal` (SIGTERM by default).
    public func signal(_ signal: Int32 = SIGTERM) {
        kill(self.pid, signal)
    }

    /// Sends SIGTERM and waits for the exit (the output files go when the last reference does).
    public func stop() async {
        self.signal()
        _ = await self.wait()
    }

    public var output: String { (try? String(contentsOfFile: self.outputPath, encoding: .utf8)) ?? "" }
    public var errorOutput: String { (try? String(contentsOfFile: self.errorPath, encoding: .utf8)) ?? "" }

    private func removeFiles() {
        unlink(self.outputPath)
        unlink(self.errorPath)
    }
}
