import Crypto
import GatewayHTTP
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle
import StaffDesk
import Wallet

extension GatewayParts {
    /// The staff desk when `DESK=on`: its own login's pool, the sessions in the gateway's Redis,
    /// and wallets built as the gateway's, over that pool acting as each person.
    func desk() throws -> DeskService? {
        let config = self.config
        guard config.desk.enabled, let database = config.desk.postgres else { return nil }
        var logger = self.logger
        logger[metadataKey: "subsystem"] = "desk"
        let postgres = PostgresClient(configuration: database, logger: logger)
        var settings = config.desk.settings
        (settings.plan, settings.currency) = (config.numberingPlan, config.currency)
        // The cookie is `Secure` exactly when the listener speaks TLS.
        settings.secureCookies = config.desk.tlsCertificateFile != nil
        let (pins, personalData) = (self.pins, self.personalData)
        let desk = try StaffDesk(
            settings: settings, postgres: postgres, redis: self.clients.redis,
            sessionKey: SymmetricKey(data: config.desk.sessionKey ?? Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })),
            makeWallet: { client in
                Wallet(
                    postgres: client, pins: pins, groupCommit: .off, pinResetCooldown: config.wallet.pinResetCooldown, personalData: personalData,
                    now: config.now, logger: Logger(label: "wallet")
                )
            },
            now: config.now, logger: logger
        )
        return DeskService(desk: desk, postgres: postgres, config: config, logger: logger)
    }
}

/// The desk as a service: it opens once its database login passed the check (``checkDeskLogin``,
/// retried every 5 s while the database does not answer; an unsafe login in production keeps it
/// closed), and its pool and hashing thread close at shutdown, after the listener.
struct DeskService: Service {
    let desk: StaffDesk
    let postgres: PostgresClient
    let config: GatewayConfig
    let logger: Logger

    func register(on router: Router<GatewayRequestContext>) { self.desk.register(on: router) }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await checkDeskLogin(self.postgres, config: self.config, logger: self.logger)
                    self.desk.open()
                    return
                } catch let refused as UnsafeDeskLogin {
                    self.logger.error("the staff desk stays closed: \(refused)")
                    return
                } catch {
                    try? await Task.sleep(for: .seconds(5))
                }
            }
        }
        try? await gracefulShutdown()
        await self.desk.shutdown()
        await self.postgres.shutdown()
    }
}
