import Basics
import Curl
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Logging
import MoMo
import MoMoGateway
import MPesaBook

/// MTN MoMo as the deployment's rail (`MOBILE_MONEY=mtn-momo`).
extension GatewayParts {
    /// MoMo when configured (or simulated), with a notice of which it is; nil on M-Pesa.
    func momo() -> MoMoService? {
        guard self.config.mobileMoney == .mtnMoMo else { return nil }
        let logger = self.logger(.mpesa)
        let service = MoMoService.make(config: self.config, book: self.book, http: self.clients.http, metrics: self.metrics, logger: logger)
        if self.config.sandbox.momo {
            logger.notice(
                "MoMo: sandbox. MTN MoMo is simulated on this gateway and no money moves; an amount's last digit chooses the outcome (README: the sandbox)",
                metadata: ["momo": .string(self.config.momo.baseURL)])
        } else if service == nil {
            logger.notice(
                "MoMo not configured: deposits and withdrawals answer 'temporarily unavailable'",
                metadata: ["missing": .string(self.config.momo.missing(publicBaseURL: self.config.publicBaseURL).joined(separator: ", "))])
        }
        return service
    }

    /// MoMo's callback route, behind its own token, whenever MoMo is the rail.
    func momoRoutes(on router: Router<GatewayRequestContext>, momo: MoMoService?) {
        guard self.config.mobileMoney == .mtnMoMo else { return }
        let config = self.config
        let guardian = CallbackGuard(
            token: config.momoToken, allowed: config.momo.allowedCIDRs.isEmpty ? config.callbackAllowedCIDRs : config.momo.allowedCIDRs,
            trustedProxies: config.trustedProxyCIDRs, refusals: self.refusals)
        MoMoRoutes(service: momo, guardian: guardian, logger: self.logger(.mpesa)).register(on: router)
    }
}

extension MoMoService {
    /// The MoMo service `config` describes, or nil while a required setting is missing.
    public static func make(config: GatewayConfig, book: MPesaBook, http: CurlClient, metrics: MetricCache, logger: Logger) -> MoMoService? {
        config.momo.configuration(publicBaseURL: config.publicBaseURL, callbackToken: config.momoToken, currency: config.currency).map { configuration in
            MoMoService(
                client: MoMoClient(configuration: configuration, http: http, logger: logger, metrics: metrics), book: book, currency: config.currency,
                promptDelay: config.momo.promptDelay, reconcileInterval: config.momo.reconcileInterval,
                payoutReview: (config.mpesa.payoutReviewAfterChecks, config.mpesa.payoutReviewAfter), metrics: metrics, logger: logger)
        }
    }
}
