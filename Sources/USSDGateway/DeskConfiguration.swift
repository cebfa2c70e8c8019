import Basics
import Crypto
import Foundation
import NIOSSL
import Postgres
import Settings
import StaffDesk

/// The staff desk's settings: `DESK`, its own database login (`DESK_DATABASE_URL`, a member of
/// `ussd_desk`), the key its cookies are signed with, its timeouts and lockout, and the admin
/// listener's TLS (`ADMIN_TLS_CERT_FILE`, `ADMIN_TLS_KEY_FILE`).
public struct DeskConfiguration: Sendable {
    /// `DESK=on`: the desk is served under `/desk` on the admin listener.
    public var enabled = false
    /// `DESK_DATABASE_URL`: the desk's own login, which switches to each person's role.
    public var postgres: PostgresConfiguration?
    /// `DESK_SESSION_KEY`: at least 32 bytes (hex or base64); in development a key of this process.
    public var sessionKey: [UInt8]?
    public var settings = DeskSettings()
    /// The admin listener's certificate chain and key (PEM).
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?

    public init() {}

    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        self.enabled = try reader.oneOf("DESK", default: Switch.off) == .on
        if let url = reader.value("DESK_DATABASE_URL", secret: true) {
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") || url.contains("=") else {
                throw ConfigError(variable: "DESK_DATABASE_URL", problem: "must be a postgres:// URL or a libpq connection string")
            }
            var postgres = PostgresConfiguration(connectionString: url)
            postgres.poolSize = try reader.integer("DESK_DATABASE_POOL_SIZE", default: 4, in: 1...64)
            self.postgres = postgres
        }
        if let key = reader.value("DESK_SESSION_KEY", secret: true) {
            guard let bytes = Self.keyBytes(key), bytes.count >= 32 else {
                throw ConfigError(variable: "DESK_SESSION_KEY", problem: "must be at least 32 bytes, as hex or base64 (openssl rand -hex 32)")
            }
            self.sessionKey = bytes
        }
        self.settings.idle = .seconds(60 * (try reader.integer("DESK_IDLE_MINUTES", default: 15, in: 1...240)))
        self.settings.absolute = .seconds(3600 * (try reader.integer("DESK_SESSION_HOURS", default: 8, in: 1...24)))
        self.settings.lockoutAttempts = try reader.integer("DESK_LOCKOUT_ATTEMPTS", default: self.settings.lockoutAttempts, in: 3...20)
        self.settings.lockout = .seconds(60 * (try reader.integer("DESK_LOCKOUT_MINUTES", default: 15, in: 1...1440)))
        self.tlsCertificateFile = reader.value("ADMIN_TLS_CERT_FILE")
        self.tlsKeyFile = reader.value("ADMIN_TLS_KEY_FILE")
        guard (self.tlsCertificateFile == nil) == (self.tlsKeyFile == nil) else {
            throw ConfigError(variable: "ADMIN_TLS_CERT_FILE", problem: "and ADMIN_TLS_KEY_FILE must be set together")
        }
        self.settings.secureCookies = self.tlsCertificateFile != nil
    }

    enum Switch: String, CaseIterable { case on, off }

    /// Why the desk may not serve so, in one line: it is served on the admin listener only (never
    /// on the public callback port), over TLS in production or off this machine, with a login of
    /// its own and, in production, a signing key that outlives the process.
    func problem(environment: GatewayConfig.DeploymentEnvironment, adminPort: Int?, adminHost: String) -> ConfigError? {
        guard self.enabled else { return nil }
        guard adminPort != nil else {
            return ConfigError(variable: "ADMIN_PORT", problem: "is required with DESK=on: the staff desk is served on the admin listener only, never on the public port")
        }
        if self.tlsCertificateFile == nil, environment == .production || !isLoopback(adminHost) {
            return ConfigError(
                variable: "ADMIN_TLS_CERT_FILE",
                problem: "and ADMIN_TLS_KEY_FILE are required with DESK=on \(environment == .production ? "in production" : "off this machine"): staff passwords and sessions cross the admin listener"
            )
        }
        if self.postgres == nil {
            return ConfigError(variable: "DESK_DATABASE_URL", problem: "is required with DESK=on: the desk's own login, a member of ussd_desk (ussd-gateway db login NAME --role ussd_desk)")
        }
        if self.sessionKey == nil, environment == .production {
            return ConfigError(variable: "DESK_SESSION_KEY", problem: "is required with DESK=on in production: at least 32 bytes, hex or base64, the same on every replica")
        }
        return nil
    }

    /// The admin listener's TLS, from the certificate and key files; nil without them.
    func tlsConfiguration() throws -> TLSConfiguration? {
        guard let certificate = self.tlsCertificateFile, let key = self.tlsKeyFile else { return nil }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        return tls
    }

    static func keyBytes(_ text: String) -> [UInt8]? {
        if text.count % 2 == 0, text.allSatisfy(\.isHexDigit), let bytes = Hex.decode(text) { return bytes }
        return Data(base64Encoded: text).map(Array.init)
    }
}
