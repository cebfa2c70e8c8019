import AfricasTalking
import Curl
import GatewayActions
import GatewayHTTP
import Hummingbird
import Logging
import Menus
import Metrics
import MPesa
import MPesaGateway
import Postgres
import Redis
import Sandbox
import ServiceLifecycle
import SMSChannel
import USSDChannel
import Wallet

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
