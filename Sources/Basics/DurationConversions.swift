extension Duration {
    /// The duration in seconds, fractions included.
    public var inSeconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded down.
    public var inMilliseconds: Int64 {
        self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000
    }

    /// The duration in whole microseconds, rounded down.
    public var inMicroseconds: Int64 {
        self.components.seconds * 1_000_000 + self.components.attoseconds / 1_000_000_000_000
    }
}
