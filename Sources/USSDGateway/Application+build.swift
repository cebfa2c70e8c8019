import AfricasTalking
import Basics
import Curl
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Logging
import Menus
import Metrics
import MPesa
import MPesaBook
import MPesaGateway
import Postgres
import Redis
import Sandbox
import ServiceLifecycle
import SMSChannel
import USSDChannel
import Wallet

/// Builds the gateway: routes, middleware, and the clients as services that the application's
/// service group starts before the server and shuts down after it, so in-flight requests finish
/// before the pools close. `menus` defaults to the checked file at `config.menusPath`, `pins` to the vault over
/// `config.pinKeys`. Each channel is built by its own part below (`GatewayParts`).
public func buildApplication(
    config: GatewayConfig, logger: Logger? = nil, menus: MenuGraph? = nil, pins: PINVault? = nil, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onAdminRunning: @escaping @Sendable (Int) async -> Void = { _ in }, metrics: MetricCache = GatewayMetrics.serving
) throws -> some ApplicationProtocol {
    let parts = try GatewayParts(config: config, logger: logger, menus: menus, pins: pins, metrics: metrics)
    let config = parts.config
    // One rail moves money: M-Pesa, or MTN MoMo (MOBILE_MONEY).
    let mpesa = config.mobileMoney == .mpesa ? parts.mobileMoney() : nil
    let momo = parts.momo()
    let actions = WalletActions(
        wallet: parts.wallet, mobileMoney: (mpesa as (any MobileMoneyChannel)?) ?? momo ?? UnavailableMobileMoney(), tariff: parts.graph.document.tariff(in: parts.graph.currency), httpActions: parts.httpActions(),
        plan: config.numberingPlan, metrics: parts.metrics
    )
    let workers = ActionWorkers()
    let ussd = parts.ussdService(actions: actions, workers: workers)
    let (sender, sms) = parts.smsChannel(actions: actions)
    let router = Router(context: GatewayRequestContext.self)
    let requestMetrics = RequestMetrics()
    router.add(middleware: RequestLogMiddleware(logger: parts.logger))
    router.add(middleware: KnownMethodsMiddleware())
    router.add(middleware: RequestMetricsMiddleware(metrics: requestMetrics))
    // The hop routes, answered in the channel pipeline with the same log line and metrics.
    let hops = HopRoutes(log: RequestLog(logger: parts.logger), metrics: requestMetrics)
    var services: [any Service] = [
        parts.clients.redis, parts.clients.postgres, parts.personalData.store, parts.personalData, parts.clients.http, workers, USSDGauges(service: ussd, logger: parts.logger(.ussd)),
        RefusedCallbackAuditor(refusals: parts.refusals, wallet: parts.wallet, metrics: parts.metrics, logger: parts.logger),
    ]
    // Started before the workers and stopped after them: no PIN check is cut off.
    if parts.ownsPINs { services.insert(parts.pins, at: 5) }
    if let profiles = parts.wallet.profiles {
        // Profiles are kept only while their changes are heard of.
        services.append(
            PostgresListener(
                configuration: parts.clients.postgres.configuration, channel: "customer_profiles", requires: CustomerProfiles.noticesInPlace,
                logger: parts.logger(.wallet),
                notice: { profiles.changed($0) }, listening: { profiles.listening($0) }
            )
        )
    }
    services += parts.development(on: router, mpesa: mpesa, sender: sender)
    let health = HealthRoutes(
        redis: parts.clients.redis, postgres: parts.clients.postgres,
        mpesa: config.sandbox.mpesa || config.sandbox.momo ? .sandbox : mpesa != nil || momo != nil ? .configured : .notConfigured,
        sms: config.sandbox.sms ? .sandbox : sender != nil ? .configured : .notConfigured
    )
    services.append(
        OperationsGauges(
            health: health, book: parts.book, metrics: parts.metrics, probeInterval: config.dependencyProbeInterval,
            snapshotInterval: config.operationsGaugesInterval, certificates: config.certificateFiles,
            floatWatched: mpesa != nil && config.mpesa.floatCheckInterval != nil, currency: config.currency, logger: parts.logger
        )
    )
    services += try parts.admin(health, public: router, hops: hops, onAdminRunning: onAdminRunning)
    parts.callbackRoutes(on: router, hops: hops, ussd: ussd, mpesa: mpesa, sms: sms)
    parts.momoRoutes(on: router, momo: momo)
    if let mpesa { services.append(mpesa) }
    if let momo { services.append(momo) }
    if let sender { services.append(sender) }
    // Last: stopped right after the server, it waits for the hops still running before the
    // workers and the clients they use stop.
    services.append(hops)
    let port = config.httpPort
    return Application(
        router: router,
        server: .http1(hops: hops, serverName: "ussd-gateway"),
        configuration: .init(address: .hostname(config.httpHost, port: port), serverName: "ussd-gateway"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
        logger: parts.logger
    )
}

extension MPesaService {
    /// The M-Pesa service `config` describes, or nil while a required setting is missing.
    public static func make(config: GatewayConfig, book: MPesaBook, http: CurlClient, metrics: MetricCache, logger: Logger) -> MPesaService? {
        config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: config.mpesaToken).map { daraja in
            MPesaService(
                daraja: DarajaClient(configuration: daraja, http: http, logger: logger, metrics: metrics), book: book, stkDelay: config.mpesa.stkDelay,
                reconcileInterval: config.mpesa.reconcileInterval, floatCheckInterval: config.mpesa.floatCheckInterval,
                payoutReview: (config.mpesa.payoutReviewAfterChecks, config.mpesa.payoutReviewAfter),
                paybillUnconfirmedAfter: config.mpesa.c2bUnconfirmedAfter, paybill: config.mpesa.paybillRules, metrics: metrics, logger: logger
            )
        }
    }
}
