import Foundation

/// A certificate authority made for one test with openssl: its certificate signed nothing the
/// test servers present, so a client that trusts only it must refuse them.
public struct TestCertificateAuthority: Sendable {
    /// The CA's certificate, PEM.
    public let certificatePath: String
    let directory: String

    /// Makes a new CA in a directory of its own under the temporary directory.
    public static func make() async throws -> TestCertificateAuthority {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("test-ca-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await ChildProcess.run(
            "/usr/bin/env",
            [
                "openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "1",
                "-subj", "/CN=an unrelated test CA", "-keyout", directory + "/ca.key", "-out", directory + "/ca.pem",
            ]
        )
        return TestCertificateAuthority(certificatePath: directory + "/ca.pem", directory: directory)
    }

    /// Removes the CA's files.
    public func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}
