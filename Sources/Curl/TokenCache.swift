import Foundation

/// An OAuth-style access token kept per process (Daraja's, each MoMo product's): refreshed by a
/// single caller while concurrent callers wait for it, `margin` before it expires.
public actor TokenCache {
    private var token: String?
    private var expires = Date.distantPast
    private var refresh: Task<(String, Duration), any Error>?
    private let margin: Duration
    private let now: @Sendable () -> Date

    public init(margin: Duration, now: @escaping @Sendable () -> Date) {
        self.margin = margin
        self.now = now
    }

    public func current(fetch: @escaping @Sendable () async throws -> (String, Duration)) async throws -> String {
        let marginSeconds = Double(self.margin.components.seconds)
        if let token, self.now().addingTimeInterval(marginSeconds) < self.expires { return token }
        if let refresh { return try await refresh.value.0 }
        let started = self.now()
        let task = Task { try await fetch() }
        self.refresh = task
        defer { self.refresh = nil }
        let (token, lifetime) = try await task.value
        self.token = token
        self.expires = started.addingTimeInterval(Double(lifetime.components.seconds))
        return token
    }

    /// Drops `token` if it is still the cached one (a newer one is kept).
    public func invalidate(_ token: String) {
        if self.token == token {
            self.token = nil
            self.expires = .distantPast
        }
    }
}
