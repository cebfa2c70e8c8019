import NIOCore
import NIOSSL

/// The TLS of one client (`rediss://`): one `NIOSSLContext`, made once from the configuration's
/// trust roots and client certificate and shared by every connection and every cluster node.
///
/// The server's certificate is fully verified: it must chain to the CA file's certificates (the
/// system's trust roots without one) and name the host. A DNS name is sent in SNI and checked
/// against the certificate's DNS names; an IP address is never sent in SNI (RFC 6066 forbids it,
/// and NIOSSL refuses it) and is checked against the certificate's IP addresses instead, which
/// NIOSSL does with the connection's peer address when no server name is given.
final class RedisTLS: Sendable {
    /// The context, or why none could be made (a CA file that cannot be read): every connection
    /// then fails with that error, so a client can be made without `throws` and report it on use.
    let context: Result<NIOSSLContext, RedisError>

    init(configuration: RedisConfiguration) {
        self.context = Result { () throws(RedisError) in try Self.makeContext(configuration) }
    }

    /// The handler that speaks TLS to `host`, first in a connection's pipeline.
    func handler(host: String) throws -> NIOSSLClientHandler {
        let context = try self.context.get()
        return try NIOSSLClientHandler(context: context, serverHostname: Self.isIPAddress(host) ? nil : host)
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    private static func makeContext(_ configuration: RedisConfiguration) throws(RedisError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        if let path = configuration.tlsCAFile {
            let roots = try? NIOSSLCertificate.fromPEMFile(path)
            guard let roots, !roots.isEmpty else {
                throw RedisError.tls(.unreadableCAFile, detail: "no PEM certificate could be read from \(path)")
            }
            tls.trustRoots = .certificates(roots)
        }
        switch (configuration.tlsCertificateFile, configuration.tlsKeyFile) {
        case (nil, nil):
            break
        case (let certificatePath?, let keyPath?):
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            } catch {
                throw RedisError.tls(.unreadableClientCertificate, detail: "\(error)")
            }
            guard !tls.certificateChain.isEmpty else {
                throw RedisError.tls(.unreadableClientCertificate, detail: "no PEM certificate in \(certificatePath)")
            }
        default:
            throw RedisError.tls(.unreadableClientCertificate, detail: "a client certificate needs its key, and a key its certificate")
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw RedisError.tls(.unreadableClientCertificate, detail: "\(error)")
        }
    }
}

extension RedisError {
    /// Why a TLS session could not be made, in words safe to log (no host, no file, no secret).
    enum TLSProblem: String, Sendable, Hashable {
        case untrusted = "the server's certificate was not trusted (signed by another CA than the one configured, expired, or for another host)"
        case wrongHost = "the server's certificate was not trusted: it does not name the host connected to"
        case notTLS = "the server does not speak TLS"
        case closedDuringHandshake = "the server closed the connection during the TLS handshake (does it speak TLS, or want a client certificate?)"
        case handshakeTimeout = "no TLS handshake within the connect timeout (does the server speak TLS?)"
        case handshakeFailed = "the TLS handshake failed"
        case unreadableCAFile = "the CA file could not be read as PEM certificates"
        case unreadableClientCertificate = "the client certificate or its key could not be read"
    }

    static func tls(_ problem: TLSProblem, detail: String) -> RedisError {
        var error = RedisError(code: .tls, detail: detail)
        error.tlsProblem = problem
        return error
    }

    /// An error a connection's pipeline caught, as a ``RedisError``: during the TLS handshake,
    /// NIOSSL's errors become `.tls` with the reason made plain; anything else, and any error once
    /// the session is up (a connection reset mid-record), is `.connection`.
    static func channel(_ error: any Error, handshaking: Bool) -> RedisError {
        if let error = error as? RedisError { return error }
        let detail = "\(error)"
        guard handshaking else { return RedisError(code: .connection, detail: detail) }
        switch error {
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return .tls(.wrongHost, detail: detail)
        case NIOSSLError.handshakeFailed:
            if detail.contains("CERTIFICATE_VERIFY_FAILED") { return .tls(.untrusted, detail: detail) }
            if detail.contains("WRONG_VERSION_NUMBER") || detail.contains("PACKET_LENGTH_TOO_LONG") { return .tls(.notTLS, detail: detail) }
            return .tls(.handshakeFailed, detail: detail)
        case NIOSSLError.noCertificateToValidate:
            return .tls(.untrusted, detail: detail)
        case NIOSSLError.uncleanShutdown:
            return .tls(.closedDuringHandshake, detail: detail)
        case is NIOSSLError, is NIOSSLExtraError:
            return .tls(.handshakeFailed, detail: detail)
        default:
            return RedisError(code: .connection, detail: detail)
        }
    }
}
