/// The one way a test waits for something another task or process does: polls `condition` every
/// `interval` until it holds, and gives up at `deadline`. No poll waits forever, and the deadline
/// is a bound for a broken run, never a timing the test depends on (a passing run returns as soon
/// as the condition holds; a loaded machine only makes it poll longer).
///
/// Returns whether the condition came true; an error the condition throws ends the wait.
public func eventually(
    within deadline: Duration = .seconds(60), every interval: Duration = .milliseconds(10), _ condition: () async throws -> Bool
) async throws -> Bool {
    let end = ContinuousClock.now + deadline
    while true {
        if try await condition() { return true }
        guard ContinuousClock.now < end else { return false }
        try await Task.sleep(for: interval)
    }
}

/// The one way a test shows that something does *not* happen (a second send, a duplicate credit):
/// `condition` must hold at every look for all of `window`, which stands for how long a wrong
/// extra would take to show. A passing run waits the whole window, so keep it short.
public func throughout(
    _ window: Duration, every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async throws -> Bool {
    let end = ContinuousClock.now + window
    while true {
        guard try await condition() else { return false }
        guard ContinuousClock.now < end else { return true }
        try await Task.sleep(for: interval)
    }
}
