#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Prometheus
import Synchronization

/// The process's own metrics, read from Linux's `/proc` when `/metrics` is rendered, under the
/// names every Prometheus client uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, ...), so the usual dashboards and alerts find them.
final class ProcessMetrics: Sendable {
    static let shared = ProcessMetrics(registry: GatewayMetrics.registry)

    private let cpu: Prometheus.Counter
    private let resident: Prometheus.Gauge
    private let virtual: Prometheus.Gauge
    private let openFDs: Prometheus.Gauge
    private let maxFDs: Prometheus.Gauge
    private let startTime: Prometheus.Gauge
    /// CPU seconds counted so far: the counter only adds, so each update adds what was used since.
    private let counted = Mutex<Double>(0)

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String) -> Prometheus.Gauge { registry.makeGauge(name: name, help: MetricHelp.text(name)) }
        self.cpu = registry.makeCounter(name: "process_cpu_seconds_total", help: MetricHelp.text("process_cpu_seconds_total"))
        self.resident = gauge("process_resident_memory_bytes")
        self.virtual = gauge("process_virtual_memory_bytes")
        self.openFDs = gauge("process_open_fds")
        self.maxFDs = gauge("process_max_fds")
        self.startTime = gauge("process_start_time_seconds")
        if let stat = Self.stat(), let bootTime = Self.bootTime() {
            self.startTime.set(bootTime + stat.startTicks / Self.ticksPerSecond)
        }
    }

    /// Reads `/proc/self` and sets the metrics. Cheap (three small files and a directory), and only
    /// run when Prometheus scrapes.
    func update() {
        if let stat = Self.stat() {
            let seconds = stat.cpuTicks / Self.ticksPerSecond
            self.counted.withLock { counted in
                if seconds > counted {
                    self.cpu.increment(by: seconds - counted)
                    counted = seconds
                }
            }
            self.virtual.set(stat.virtualBytes)
            self.resident.set(stat.residentPages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        self.openFDs.set(Double(Self.openDescriptors()))
        var limit = rlimit()
        if getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 { self.maxFDs.set(Double(limit.rlim_cur)) }
    }

    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    struct Stat {
        var cpuTicks: Double
        var startTicks: Double
        var virtualBytes: Double
        var residentPages: Double
    }

    /// `/proc/self/stat`'s fields after the command name (which may hold spaces and parentheses,
    /// so the split starts after its last `)`): utime and stime are fields 14 and 15, starttime
    /// 22, vsize 23 and rss 24.
    static func stat() -> Stat? {
        guard let text = read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        guard let user = field(14), let system = field(15), let start = field(22), let virtual = field(23), let rss = field(24) else { return nil }
        return Stat(cpuTicks: user + system, startTicks: start, virtualBytes: virtual, residentPages: rss)
    }

    /// The system's boot time, `btime` in `/proc/stat`.
    static func bootTime() -> Double? {
        guard let text = read("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingPrefix(" "))
        }
        return nil
    }

    static func openDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        // The directory's own descriptor, open while it is read.
        return max(0, count - 1)
    }

    /// A small `/proc` file's text (their size is 0 to `stat`: read until the end).
    static func read(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

#if canImport(Glibc)
private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#else
private let RLIMIT_NOFILE_VALUE = RLIMIT_NOFILE
#endif

private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}
