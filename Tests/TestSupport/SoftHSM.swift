import Foundation
import Synchronization

/// A SoftHSM2 token (Debian's softhsm2, installed by `make test`) for the PIN key tests: a token
/// directory and configuration of this test process's own, made once, with `SOFTHSM2_CONF` set
/// for the process (the library reads it when it is initialised) and for children that inherit
/// the environment.
public enum SoftHSM {
    /// The module every test loads.
    public static let module = "/usr/lib/softhsm/libsofthsm2.so"
    /// The token's user PIN (the security officer's is another).
    public static let userPIN = "4711-test-user"

    public struct Token: Sendable {
        /// The label the token was initialised with, which names its slot.
        public let label: String
        /// `SOFTHSM2_CONF` for child processes.
        public let configuration: String
    }

    private static let made = Mutex<Token?>(nil)
    private static let turn = TurnLock()

    /// Runs `body` while no other test of this process uses the token. A PKCS#11 login belongs to
    /// the whole process: while one test is logged in, another's `C_Login` answers "already logged
    /// in" whatever PIN it gives, so a test that a wrong PIN is refused must be alone with it.
    /// Every test that opens the token in this process takes its turn here.
    public static func alone<Result>(_ body: () async throws -> Result) async throws -> Result {
        await self.turn.acquire()
        do {
            let result = try await body()
            await self.turn.release()
            return result
        } catch {
            await self.turn.release()
            throw error
        }
    }

    /// The process's token, made on first use: `softhsm2-util --init-token`.
    public static func token() throws -> Token {
        try self.made.withLock { made in
            if let made { return made }
            guard FileManager.default.fileExists(atPath: Self.module) else {
                throw SoftHSMError(reason: "SoftHSM2 is not installed (\(Self.module)); `make test` installs Debian's softhsm2")
            }
            let base = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/softhsm-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            let tokens = base + "/tokens"
            try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
            let configuration = base + "/softhsm2.conf"
            try "directories.tokendir = \(tokens)\nobjectstore.backend = file\nlog.level = ERROR\n".write(toFile: configuration, atomically: true, encoding: .utf8)
            setenv("SOFTHSM2_CONF", configuration, 1)
            let label = "ussd-tests"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/softhsm2-util")
            process.arguments = ["--init-token", "--free", "--label", label, "--so-pin", "security-officer-0", "--pin", Self.userPIN]
            process.environment = ProcessInfo.processInfo.environment.merging(["SOFTHSM2_CONF": configuration]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw SoftHSMError(reason: "softhsm2-util --init-token exited \(process.terminationStatus)") }
            let token = Token(label: label, configuration: configuration)
            made = token
            return token
        }
    }
}

/// One holder at a time, in order of arrival, for async code.
actor TurnLock {
    private var held = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard self.held else {
            self.held = true
            return
        }
        await withCheckedContinuation { self.waiting.append($0) }
    }

    func release() {
        if self.waiting.isEmpty { self.held = false } else { self.waiting.removeFirst().resume() }
    }
}

public struct SoftHSMError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { self.reason }
}
