import GatewayHTTP
import Settings

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP port the kernel calls free on `host`'s interfaces (any interface when `host` is not an
/// IPv4 address): bound to port 0, read back, closed. For a sandbox gateway asked for port 0,
/// whose simulated providers must know its port before it listens.
func freeListeningPort(host: String) throws(ConfigError) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ConfigError(variable: "HTTP_PORT", problem: "0: no socket to find a free port with") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    if inet_pton(AF_INET, host, &address.sin_addr) != 1 { address.sin_addr.s_addr = INADDR_ANY }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
        }
    }
    guard bound else { throw ConfigError(variable: "HTTP_PORT", problem: "0: no free port found for the sandbox") }
    return Int(UInt16(bigEndian: address.sin_port))
}
