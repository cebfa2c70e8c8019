import AfricasTalking
import Basics
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import HummingbirdTLS
import Logging
import Menus
import MPesaBook
import MPesaGateway
import Sandbox
import StaffDesk
import ServiceLifecycle
import SMSChannel
import USSDChannel
import Wallet

/// What every channel of one gateway shares, and a builder for each channel: `buildApplication`
/// only puts them together.
struct GatewayParts {
    let config: GatewayConfig
    let logger: Logger
    let graph: MenuGraph
    let clients: GatewayClients
    let pins: PINVault
    /// A vault passed in is its owner's to run and stop (tests share one across applications).
    let ownsPINs: Bool
    let wallet: Wallet
    /// The keys that seal names and texts, over a client of the key store.
    let personalData: PersonalData
    /// M-Pesa's records beside the ledger (one per process: it gathers deposit completions).
    let book: MPesaBook
    /// Refused callbacks (forged, from outside the allowlist, malformed), for the audit trail.
    let refusals: CallbackRefusals
    /// What every part records, handed to each (the process's Prometheus registry when serving).
    let metrics: MetricCache

    enum Subsystem: String { case ussd, mpesa, sms, sandbox, wallet, httpActions = "http.actions" }

    init(config: GatewayConfig, logger: Logger?, menus: MenuGraph?, pins: PINVault?, metrics: MetricCache) throws {
        self.metrics = metrics
        self.refusals = CallbackRefusals(metrics: metrics)
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
        let graph = try menus ?? loadCheckedMenus(at: config.menusPath, hopDeadline: config.ussd.hopDeadline, backendVariables: config.backendVariables, market: config.market)
        if let problem = config.backendTransportProblem(graph.document) { throw problem }
        self.config = config
        self.logger = logger
        self.graph = graph
        self.clients = GatewayClients(config: config, logger: logger)
        self.ownsPINs = pins == nil
        self.pins = try pins ?? config.openPINVault()
        self.personalData = try config.openPersonalData(logger: logger)
        self.wallet = Wallet(
            postgres: self.clients.postgres, pins: self.pins, lockDuration: .seconds(config.wallet.pinLockMinutes * 60), groupCommit: config.wallet.groupCommit,
            pinResetCooldown: config.wallet.pinResetCooldown,
            profiles: config.wallet.profileCacheSize > 0 ? CustomerProfiles(limit: config.wallet.profileCacheSize) : nil,
            personalData: self.personalData, now: config.now,
            logger: Logger(label: "wallet")
        )
        self.book = MPesaBook(wallet: self.wallet)
    }

    /// The gateway's logger, its records marked with `subsystem`.
    func logger(_ subsystem: Subsystem) -> Logger {
        var logger = self.logger
        logger[metadataKey: "subsystem"] = .string(subsystem.rawValue)
        return logger
    }

    /// M-Pesa when configured (or simulated), with a notice of which it is.
    func mobileMoney() -> MPesaService? {
        let logger = self.logger(.mpesa)
        let mpesa = MPesaService.make(config: self.config, book: self.book, http: self.clients.http, metrics: self.metrics, logger: logger)
        if self.config.sandbox.mpesa {
            logger.notice(
                "M-Pesa: sandbox. Daraja is simulated on this gateway and no money moves; an amount's last digit chooses the outcome (README: the sandbox)",
                metadata: ["daraja": .string(self.config.mpesa.baseURL)]
            )
        } else if mpesa == nil {
            logger.notice(
                "M-Pesa not configured: deposits and withdrawals answer 'temporarily unavailable'",
                metadata: ["missing": .string(self.config.mpesa.missing(publicBaseURL: self.config.publicBaseURL).joined(separator: ", "))]
            )
        }
        return mpesa
    }

    /// menus.json's `http` actions against the operator's backends, when it names any.
    func httpActions() -> HTTPActions? {
        guard !(self.graph.document.backends ?? [:]).isEmpty else { return nil }
        let (logger, wallet) = (self.logger(.httpActions), self.wallet)
        let actions = HTTPActions(
            graph: self.graph, environment: self.config.backendValues, http: self.clients.http,
            notices: { msisdn, template, params, dedupe in
                do {
                    try await wallet.queueNotice(msisdn, template: template, params: params, dedupe: dedupe)
                } catch {
                    logger.warning("SMS notice not queued", metadata: ["template": .string(template), "error": .string(safeDescription(of: error))])
                }
            }, metrics: self.metrics, logger: logger
        )
        if !actions.unconfigured.isEmpty {
            logger.notice(
                "backends without their URL set: their menu items answer that the service is not available",
                metadata: ["backends": .string(actions.unconfigured.joined(separator: ","))]
            )
        }
        return actions
    }

    /// The USSD channel's service: sessions in Redis, the menu engine and the actions.
    func ussdService(actions: WalletActions, workers: ActionWorkers) -> USSDService {
        var settings = USSDService.Settings(self.config.ussd, menusResumeWindow: self.graph.document.settings.resumeWindowSeconds)
        (settings.now, settings.plan) = (self.config.now, self.config.numberingPlan)
        return USSDService(
            graph: self.graph, redis: self.clients.redis, actions: actions, workers: workers, wallet: self.wallet, sealer: VaultSealer(pins: self.pins),
            settings: settings, metrics: self.metrics, logger: self.logger(.ussd)
        )
    }

    /// The SMS channel: the outbox's sender when Africa's Talking is configured, and the commands.
    func smsChannel(actions: WalletActions) -> (sender: OutboxSender?, service: SMSService) {
        let logger = self.logger(.sms)
        let sender = self.config.sms.configuration.map { configuration in
            OutboxSender(
                postgres: self.clients.postgres, personalData: self.personalData, client: AfricasTalkingSMS(configuration: configuration, http: self.clients.http), graph: self.graph,
                settings: self.config.sms, metrics: self.metrics, logger: logger
            )
        }
        if self.config.sandbox.sms {
            logger.notice("SMS: sandbox. Messages land in the simulated handsets' inboxes (GET /sandbox/inbox, /simulator), not on phones")
        } else if sender == nil {
            logger.notice("SMS not configured (AT_USERNAME, AT_API_KEY): messages are queued, not sent")
        }
        let service = SMSService(
            graph: self.graph, postgres: self.clients.postgres, wallet: self.wallet, actions: actions,
            rateLimit: (self.clients.redis, self.config.sms.rateLimitPerMinute), now: self.config.now, plan: self.config.numberingPlan,
            metrics: self.metrics, logger: logger
        )
        return (sender, service)
    }

    /// Development's parts on the public router: the simulated providers and the browser phone.
    /// Their services (none in production).
    func development(on router: Router<GatewayRequestContext>, mpesa: MPesaService?, sender: OutboxSender?) -> [any Service] {
        let config = self.config
        var services: [any Service] = []
        if config.sandbox.runs {
            // Only the mail server runs when both providers are live: nothing calls the gateway back.
            let gatewayURL = config.sandbox.gatewayURL ?? "http://127.0.0.1:\(config.httpPort)"
            let logger = self.logger(.sandbox)
            var settings = Sandbox.Settings(
                    mpesa: config.sandbox.mpesa, sms: config.sandbox.sms, delay: config.sandbox.delay, deliveryDelay: config.sandbox.deliveryDelay,
                    deliveryURL: gatewayURL + "/sms/africastalking/delivery" + (config.africasTalkingToken.map { "/" + $0 } ?? ""),
                    paybillURLs: MPesaSettings.paybillURLs(publicBaseURL: gatewayURL, callbackToken: config.mpesaToken), plan: config.numberingPlan,
                    mailPort: config.sandbox.mail ? config.sandbox.mailPort : nil
            )
            (settings.currency, settings.momo) = (config.currency, config.sandbox.momo)
            let sandbox = Sandbox(settings: settings, http: self.clients.http, logger: logger)
            sandbox.register(on: router)
            if config.sandbox.jobs {
                JobsSandbox().register(on: router)
                logger.notice("Jobs: sandbox. The Jobs option lists sample jobs from /sandbox/jobs (set JOBS_API_URL and JOBS_API_KEY for a real API)")
            }
            services.append(sandbox)
        }
        if config.sandbox.simulator {
            let suffix = config.africasTalkingToken.map { "/" + $0 } ?? ""
            SimulatorPage(
                settings: .init(
                    ussdPath: "/ussd/africastalking" + suffix, smsPath: "/sms/africastalking/inbound" + suffix, serviceCodes: self.graph.document.serviceCodes,
                    smsShortcode: config.sms.senderID ?? "22384", mpesa: config.sandbox.mpesa || config.sandbox.momo ? "sandbox" : mpesa != nil || config.mobileMoney == .mtnMoMo ? "live" : "not configured",
                    sms: config.sandbox.sms ? "sandbox" : sender != nil ? "live" : "not configured",
                    paybillPath: config.sandbox.mpesa ? DarajaSandbox.paybillPath : nil, paybill: config.mpesa.paybillShortcode
                ).inMarket(rail: config.mobileMoney.displayName, country: config.numberingPlan.countries[0])
            ).register(on: router)
            self.logger.notice(
                "browser phone: GET /simulator", metadata: ["url": .string((config.sandbox.gatewayURL ?? "http://\(config.httpHost):\(config.httpPort)") + "/simulator")]
            )
        }
        return services
    }

    /// Readiness and metrics on a listener of their own, off the public callback port (its
    /// application, a service), with the staff desk when `DESK=on` (over TLS when its certificate
    /// is set); without `ADMIN_PORT`, every health route on the public router.
    func admin(
        _ health: HealthRoutes, public router: Router<GatewayRequestContext>, hops: HopRoutes, onAdminRunning: @escaping @Sendable (Int) async -> Void
    ) throws -> [any Service] {
        // The public listener's /healthz is the hop server's.
        health.register(on: hops)
        guard let adminPort = self.config.adminPort else {
            health.register(on: router, parts: [.readiness, .metrics])
            return []
        }
        let admin = Router(context: GatewayRequestContext.self)
        health.register(on: admin, parts: [.health, .readiness, .metrics])
        var services: [any Service] = []
        if let desk = try self.desk() {
            desk.register(on: admin)
            services.append(desk)
            self.logger.notice("staff desk: /desk on the admin listener", metadata: ["port": .stringConvertible(adminPort)])
        }
        let tls = try self.config.desk.tlsConfiguration()
        services.append(
            Application(
                router: admin, server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
                configuration: .init(address: .hostname(self.config.adminHost, port: adminPort), serverName: "ussd-gateway-admin"),
                onServerRunning: { channel in await onAdminRunning(channel.localAddress?.port ?? adminPort) }, logger: self.logger
            )
        )
        return services
    }

    /// Every provider's callback routes, each behind the guard of its own token: USSD and SMS on the
    /// hop server (`hops`), M-Pesa on Hummingbird's router.
    func callbackRoutes(on router: Router<GatewayRequestContext>, hops: HopRoutes, ussd: USSDService, mpesa: MPesaService?, sms: SMSService) {
        let config = self.config
        let guardian = CallbackGuard(
            token: config.africasTalkingToken, allowed: config.callbackAllowedCIDRs, trustedProxies: config.trustedProxyCIDRs, refusals: self.refusals
        )
        USSDRoutes(service: ussd, guardian: guardian, logger: self.logger(.ussd)).register(on: hops)
        if !config.ussd.dialects.isEmpty {
            let dialectGuard = CallbackGuard(
                token: config.dialectToken, allowed: config.callbackAllowedCIDRs, trustedProxies: config.trustedProxyCIDRs, refusals: self.refusals
            )
            var flares: DialectRoutes.FlaresCredentials?
            if let user = config.ussd.flaresUser, let password = config.ussd.flaresPassword { flares = .init(user: user, password: password) }
            DialectRoutes(service: ussd, guardian: dialectGuard, budget: self.graph.budget, flares: flares, dialects: Set(config.ussd.dialects), logger: self.logger(.ussd))
                .register(on: hops)
        }
        let mpesaGuard = CallbackGuard(
            token: config.mpesaToken, allowed: config.mpesa.allowedCIDRs.isEmpty ? config.callbackAllowedCIDRs : config.mpesa.allowedCIDRs,
            trustedProxies: config.trustedProxyCIDRs, refusals: self.refusals
        )
        MPesaRoutes(service: mpesa, guardian: mpesaGuard, logger: self.logger(.mpesa)).register(on: router)
        PaybillRoutes(
            book: self.book, shortcode: config.mpesa.paybillShortcode, verifier: mpesa, maxAmount: config.mpesa.paybillRules.maxAmount,
            guardian: mpesaGuard, logger: self.logger(.mpesa), plan: config.numberingPlan, metrics: self.metrics
        ).register(on: router)
        SMSRoutes(service: sms, guardian: guardian, logger: self.logger(.sms)).register(on: hops)
    }
}
