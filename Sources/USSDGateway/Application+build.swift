import Curl
import Hummingbird
import Logging
import Postgres
import Redis

/// The clients one gateway process shares among its routes and workers.
public struct GatewayClients: Sendable {
    public let redis: RedisClient
    public let postgres: PostgresClient
    public let http: CurlClient

    public init(config: GatewayConfig, logger: Logger) {
        var redisLogger = logger
        redisLogger[metadataKey: "subsystem"] = "redis"
        self.redis = RedisClient(configuration: config.redis, logger: redisLogger)
        self.postgres = PostgresClient(configuration: config.postgres, logger: Logger(label: "postgres"))
        self.http = CurlClient(logger: Logger(label: "http.client"))
    }
}

/// Builds the gateway: routes, middleware, and the clients as services that the application's
/// service group starts before the server and shuts down after it, so in-flight requests finish
/// before the pools close.
public func buildApplication(config: GatewayConfig, logger: Logger? = nil) -> some ApplicationProtocol {
    var logger = logger ?? Logger(label: "ussd.http")
    logger.logLevel = config.logLevel
    GatewayMetrics.bootstrap()
    let clients = GatewayClients(config: config, logger: logger)

    let router = Router()
    router.add(middleware: RequestLogMiddleware(logger: logger))
    router.add(middleware: MetricsMiddleware())
    HealthRoutes(redis: clients.redis, postgres: clients.postgres).register(on: router)

    return Application(
        router: router,
        configuration: .init(address: .hostname(config.httpHost, port: config.httpPort), serverName: "ussd-gateway"),
        services: [clients.redis, clients.postgres, clients.http],
        logger: logger
    )
}
