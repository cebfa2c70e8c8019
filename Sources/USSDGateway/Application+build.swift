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
/// `config.pinKeys`.
public func buildApplication(
    config: GatewayConfig, logger: Logger? = nil, menus: MenuGraph? = nil, pins: PINVault? = nil, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onAdminRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    var config = config
    // Checked here too: a configuration built in code never ran `GatewayConfig.load`'s checks.
    if let problem = config.sandboxProblem { throw problem }
    if config.sandbox.isOn && config.sandbox.gatewayURL == nil {
        // The simulated providers call this very listener, so its port must be known before it listens.
        if config.httpPort == 0 { config.httpPort = try freeListeningPort(host: config.httpHost) }
        config.applySandbox(port: config.httpPort)
    }
    var logger = logger ?? Logger(label: "ussd.http")
    logger.logLevel = config.logLevel
    GatewayMetrics.bootstrap()
    let graph = try menus ?? loadCheckedMenus(at: config.menusPath, hopDeadline: config.hopDeadline, backendVariables: config.backendVariables)
    if let problem = config.backendTransportProblem(graph.document) { throw problem }
    let clients = GatewayClients(config: config, logger: logger)
    // A vault passed in is its owner's to run and stop (tests share one across applications).
    let ownPINs = pins == nil
    let pins = try pins ?? config.openPINVault()
    let wallet = Wallet(
        postgres: clients.postgres, pins: pins, lockDuration: .seconds(config.pinLockMinutes * 60), groupCommit: config.groupCommit,
        pinResetCooldown: config.pinResetCooldown, now: config.now, logger: Logger(label: "wallet")
    )
    var settings = USSDService.Settings()
    settings.sessionTTLSeconds = config.sessionTTLSeconds
    settings.resumeWindowSeconds = config.resumeWindowSeconds ?? graph.document.settings.resumeWindowSeconds ?? 300
    settings.hopDeadline = config.hopDeadline
    settings.rateLimitPerMinute = config.ussdRateLimitPerMinute
    settings.repeatWindow = config.ussdRepeatWindow
    var ussdLogger = logger
    ussdLogger[metadataKey: "subsystem"] = "ussd"
    var mpesaLogger = logger
    mpesaLogger[metadataKey: "subsystem"] = "mpesa"
    let mpesa = MPesaService.make(config: config, wallet: wallet, http: clients.http, logger: mpesaLogger)
    if config.sandbox.mpesa {
        mpesaLogger.notice(
            "M-Pesa: sandbox. Daraja is simulated on this gateway and no money moves; an amount's last digit chooses the outcome (README: the sandbox)",
            metadata: ["daraja": .string(config.mpesa.baseURL)]
        )
    } else if mpesa == nil {
        mpesaLogger.notice(
            "M-Pesa not configured: deposits and withdrawals answer 'temporarily unavailable'",
            metadata: ["missing": .string(config.mpesa.missing(publicBaseURL: config.publicBaseURL).joined(separator: ", "))]
        )
    }
    let httpLogger = { var logger = logger; logger[metadataKey: "subsystem"] = "http.actions"; return logger }()
    let httpActions = (graph.document.backends ?? [:]).isEmpty ? nil : HTTPActions(
        graph: graph, environment: config.backendValues, http: clients.http,
        notices: { msisdn, template, params, dedupe in
            do {
                try await wallet.queueNotice(msisdn, template: template, params: params, dedupe: dedupe)
            } catch {
                httpLogger.warning("SMS notice not queued", metadata: ["template": .string(template), "error": .string(safeDescription(of: error))])
            }
        }, logger: httpLogger
    )
    if let unconfigured = httpActions?.unconfigured, !unconfigured.isEmpty {
        httpLogger.notice("backends without their URL set: their menu items answer that the service is not available", metadata: ["backends": .string(unconfigured.joined(separator: ","))])
    }
    let actions = WalletActions(wallet: wallet, mobileMoney: mpesa ?? UnavailableMobileMoney(), tariff: graph.document.tariff, httpActions: httpActions)
    let workers = ActionWorkers()
    let ussd = USSDService(
        graph: graph, redis: clients.redis, actions: actions, workers: workers, wallet: wallet, sealer: VaultSealer(pins: pins),
        settings: settings, logger: ussdLogger
    )
    // Refused callbacks (forged, from outside the allowlist, malformed) go to the audit trail.
    let refusals = CallbackRefusals()
    let guardian = CallbackGuard(
        token: config.africasTalkingToken, allowed: config.callbackAllowedCIDRs, trustedProxies: config.trustedProxyCIDRs, refusals: refusals
    )

    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: RequestLogMiddleware(logger: logger))
    router.add(middleware: KnownMethodsMiddleware())
    router.add(middleware: MetricsMiddleware())
    var smsLogger = logger
    smsLogger[metadataKey: "subsystem"] = "sms"
    let sender = config.sms.configuration.map { configuration in
        OutboxSender(
            postgres: clients.postgres, client: AfricasTalkingSMS(configuration: configuration, http: clients.http), graph: graph,
            settings: config.sms, logger: smsLogger
        )
    }
    if config.sandbox.sms {
        smsLogger.notice("SMS: sandbox. Messages land in the simulated handsets' inboxes (GET /sandbox/inbox, /simulator), not on phones")
    } else if sender == nil {
        smsLogger.notice("SMS not configured (AT_USERNAME, AT_API_KEY): messages are queued, not sent")
    }
    let sms = SMSService(
        graph: graph, postgres: clients.postgres, wallet: wallet, actions: actions, rateLimit: (clients.redis, config.smsRateLimitPerMinute), logger: smsLogger
    )
    let health = HealthRoutes(
        redis: clients.redis, postgres: clients.postgres,
        mpesa: config.sandbox.mpesa ? .sandbox : mpesa != nil ? .configured : .notConfigured,
        sms: config.sandbox.sms ? .sandbox : sender != nil ? .configured : .notConfigured
    )
    var services: [any Service] = [
        clients.redis, clients.postgres, clients.http, workers, USSDGauges(service: ussd, logger: ussdLogger),
        RefusedCallbackAuditor(refusals: refusals, wallet: wallet, logger: logger),
    ]
    // Started before the workers and stopped after them: no PIN check is cut off.
    if ownPINs { services.insert(pins, at: 3) }
    if config.sandbox.isOn, let gatewayURL = config.sandbox.gatewayURL {
        var sandboxLogger = logger
        sandboxLogger[metadataKey: "subsystem"] = "sandbox"
        let sandbox = Sandbox(
            settings: .init(
                mpesa: config.sandbox.mpesa, sms: config.sandbox.sms, delay: config.sandbox.delay, deliveryDelay: config.sandbox.deliveryDelay,
                deliveryURL: gatewayURL + "/sms/africastalking/delivery" + (config.africasTalkingToken.map { "/" + $0 } ?? ""),
                paybillURLs: MPesaSettings.paybillURLs(publicBaseURL: gatewayURL, callbackToken: config.mpesaToken)
            ),
            http: clients.http, logger: sandboxLogger
        )
        sandbox.register(on: router)
        if config.sandbox.jobs {
            JobsSandbox().register(on: router)
            sandboxLogger.notice("Jobs: sandbox. The Jobs option lists sample jobs from /sandbox/jobs (set JOBS_API_URL and JOBS_API_KEY for a real API)")
        }
        services.append(sandbox)
    }
    if config.sandbox.simulator {
        let suffix = config.africasTalkingToken.map { "/" + $0 } ?? ""
        SimulatorPage(
            settings: .init(
                ussdPath: "/ussd/africastalking" + suffix, smsPath: "/sms/africastalking/inbound" + suffix, serviceCodes: graph.document.serviceCodes,
                smsShortcode: config.sms.senderID ?? "22384", mpesa: config.sandbox.mpesa ? "sandbox" : mpesa != nil ? "live" : "not configured",
                sms: config.sandbox.sms ? "sandbox" : sender != nil ? "live" : "not configured",
                paybillPath: config.sandbox.mpesa ? DarajaSandbox.paybillPath : nil, paybill: config.mpesa.paybillShortcode
            )
        ).register(on: router)
        logger.notice("browser phone: GET /simulator", metadata: ["url": .string((config.sandbox.gatewayURL ?? "http://\(config.httpHost):\(config.httpPort)") + "/simulator")])
    }
    if let adminPort = config.adminPort {
        // Readiness and metrics on a listener of their own, off the public callback port.
        let admin = Router(context: GatewayRequestContext.self)
        health.register(on: admin, parts: [.health, .readiness, .metrics])
        health.register(on: router, parts: [.health])
        services.append(
            Application(
                router: admin, configuration: .init(address: .hostname(config.adminHost, port: adminPort), serverName: "ussd-gateway-admin"),
                onServerRunning: { channel in await onAdminRunning(channel.localAddress?.port ?? adminPort) }, logger: logger
            )
        )
    } else {
        health.register(on: router)
    }
    USSDRoutes(service: ussd, guardian: guardian, logger: ussdLogger).register(on: router)
    if !config.ussdDialects.isEmpty {
        let dialectGuard = CallbackGuard(
            token: config.dialectToken, allowed: config.callbackAllowedCIDRs, trustedProxies: config.trustedProxyCIDRs, refusals: refusals
        )
        var flares: DialectRoutes.FlaresCredentials?
        if let user = config.flaresUser, let password = config.flaresPassword { flares = .init(user: user, password: password) }
        DialectRoutes(service: ussd, guardian: dialectGuard, budget: graph.budget, flares: flares, dialects: Set(config.ussdDialects), logger: ussdLogger)
            .register(on: router)
    }
    let mpesaGuard = CallbackGuard(
        token: config.mpesaToken, allowed: config.mpesa.allowedCIDRs.isEmpty ? config.callbackAllowedCIDRs : config.mpesa.allowedCIDRs,
        trustedProxies: config.trustedProxyCIDRs, refusals: refusals
    )
    MPesaRoutes(service: mpesa, guardian: mpesaGuard, logger: mpesaLogger).register(on: router)
    PaybillRoutes(
        wallet: wallet, shortcode: config.mpesa.paybillShortcode, verifier: mpesa, maxAmount: config.mpesa.paybillRules.maxAmount, guardian: mpesaGuard,
        logger: mpesaLogger
    ).register(on: router)
    SMSRoutes(service: sms, guardian: guardian, logger: smsLogger).register(on: router)

    if let mpesa { services.append(mpesa) }
    if let sender { services.append(sender) }

    let port = config.httpPort
    return Application(
        router: router,
        server: .http1OnEventLoops(),
        configuration: .init(address: .hostname(config.httpHost, port: port), serverName: "ussd-gateway"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
        logger: logger
    )
}

extension MPesaService {
    /// The M-Pesa service `config` describes, or nil while a required setting is missing.
    public static func make(config: GatewayConfig, wallet: Wallet, http: CurlClient, logger: Logger) -> MPesaService? {
        config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: config.mpesaToken).map { daraja in
            MPesaService(
                daraja: DarajaClient(configuration: daraja, http: http, logger: logger), wallet: wallet, stkDelay: config.mpesa.stkDelay,
                reconcileInterval: config.mpesa.reconcileInterval,
                payoutReview: (config.mpesa.payoutReviewAfterChecks, config.mpesa.payoutReviewAfter),
                paybillUnconfirmedAfter: config.mpesa.c2bUnconfirmedAfter, paybill: config.mpesa.paybillRules, logger: logger
            )
        }
    }
}
