import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import MPesa
@testable import MPesaGateway
@testable import SMSChannel
import Settings
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway
import Wallet

@Suite struct ConfigTests {
    @Test func defaultsAreDocumentedValues() throws {
        let config = try GatewayConfig.load(environment: ["PIN_KEY": "1:612d70726f64756374696f6e2d7065707065722d6f662d33322d627974657321", "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "CALLBACK_TOKEN": "abcdefghijklmnopqrstuvwxyz012345"])
        #expect(config.wallet.pinLockMinutes == 30)
        #expect(config.httpHost == "127.0.0.1")
        #expect(config.httpPort == 8080)
        #expect(config.environment == .production)
        #expect(config.logLevel == .info)
        #expect(config.redis.host == "127.0.0.1" && config.redis.port == 6379)
        #expect(config.postgres.statementTimeout == .seconds(5))
    }

    @Test func mpesaSettingsBuildDarajaWithCallbackURLsFromThePublicBase() throws {
        var environment = [
            "ENVIRONMENT": "development", "PUBLIC_BASE_URL": "https://gw.example.com/", "CALLBACK_TOKEN": "abcdefghijklmnopqrstuvwxyz012345",
            "MPESA_CONSUMER_KEY": "k", "MPESA_CONSUMER_SECRET": "s", "MPESA_SHORTCODE": "174379", "MPESA_PASSKEY": "p",
            "MPESA_B2C_SHORTCODE": "600992", "MPESA_INITIATOR_NAME": "testapi", "MPESA_SECURITY_CREDENTIAL": "c",
        ]
        var config = try GatewayConfig.load(environment: environment)
        #expect(config.mpesa.stkDelay == .milliseconds(1500) && config.mpesa.baseURL == "https://sandbox.safaricom.co.ke")
        let daraja = try #require(config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: config.callbackToken))
        #expect(daraja.stkCallbackURL == "https://gw.example.com/mpesa/stk/callback/abcdefghijklmnopqrstuvwxyz012345")
        #expect(daraja.b2cTimeoutURL == "https://gw.example.com/mpesa/b2c/timeout/abcdefghijklmnopqrstuvwxyz012345")
        #expect(daraja.partyB == "174379" && daraja.transactionType == .paybill)
        #expect(!daraja.description.contains("s,") && !daraja.description.contains("passkey"), "a configuration prints no secret")

        environment["MPESA_TRANSACTION_TYPE"] = "till"
        config = try GatewayConfig.load(environment: environment)
        #expect(config.mpesa.missing(publicBaseURL: config.publicBaseURL) == ["MPESA_TILL_NUMBER"])
        environment["MPESA_TILL_NUMBER"] = "5123456"
        config = try GatewayConfig.load(environment: environment)
        #expect(config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: nil)?.partyB == "5123456")

        config = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "MPESA_CONSUMER_KEY": "k"])
        #expect(config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: nil) == nil)
        #expect(config.mpesa.missing(publicBaseURL: nil).contains("PUBLIC_BASE_URL"))
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "MPESA_TRANSACTION_TYPE": "cash"]) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "STK_DELAY_MS": "-5"]) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PUBLIC_BASE_URL": "gw.example.com"]) }
        #expect(throws: ConfigError.self, "Safaricom calls back only over https") {
            try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PUBLIC_BASE_URL": "http://gw.example.com"])
        }
        #expect(try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PUBLIC_BASE_URL": "http://127.0.0.1:8080"]).publicBaseURL != nil)
    }

    @Test func paybillVerificationSettingsHaveTheirDefaultsAndBounds() throws {
        let base = [
            "ENVIRONMENT": "development", "PUBLIC_BASE_URL": "https://gw.example.com", "MPESA_CONSUMER_KEY": "k", "MPESA_CONSUMER_SECRET": "s",
            "MPESA_SHORTCODE": "174379", "MPESA_PASSKEY": "p", "MPESA_B2C_SHORTCODE": "600992", "MPESA_INITIATOR_NAME": "testapi",
            "MPESA_SECURITY_CREDENTIAL": "c",
        ]
        var config = try GatewayConfig.load(environment: base)
        #expect(config.mpesa.c2bMaxAmount == 150_000 && config.mpesa.paybillRules.maxAmount == .shillings(150_000))
        #expect(config.mpesa.c2bReviewAfter == .seconds(3600))
        var daraja = try #require(config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: nil))
        #expect(daraja.paybillInitiator == ("testapi", "c"), "the B2C initiator asks when the paybill has none of its own")
        #expect(daraja.paybillShortcode == "174379")

        config = try GatewayConfig.load(environment: base.merging([
            "MPESA_C2B_MAX_AMOUNT": "70000", "MPESA_C2B_REVIEW_AFTER_MINUTES": "30", "MPESA_C2B_INITIATOR_NAME": "paybillapi",
            "MPESA_C2B_SECURITY_CREDENTIAL": "pc", "MPESA_C2B_SHORTCODE": "600100",
        ]) { $1 })
        #expect(config.mpesa.paybillRules.maxAmount == .shillings(70_000) && config.mpesa.paybillRules.reviewAfter == .seconds(1800))
        daraja = try #require(config.mpesa.daraja(publicBaseURL: config.publicBaseURL, callbackToken: nil))
        #expect(daraja.paybillInitiator == ("paybillapi", "pc") && daraja.paybillShortcode == "600100")
        #expect(!daraja.description.contains("pc"), "no credential in the description")
        for (name, value) in [("MPESA_C2B_MAX_AMOUNT", "250001"), ("MPESA_C2B_MAX_AMOUNT", "0"), ("MPESA_C2B_REVIEW_AFTER_MINUTES", "1")] {
            do {
                _ = try GatewayConfig.load(environment: base.merging([name: value]) { $1 })
                Issue.record("\(name)=\(value) was taken")
            } catch {
                #expect(error.variable == name)
            }
        }
    }

    @Test func smsSettingsAreReadWithTheirDefaults() throws {
        var config = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "SANDBOX": "off"])
        #expect(config.sms.configuration == nil, "no AT_USERNAME/AT_API_KEY and no sandbox: queued, not sent")
        #expect(config.sms.baseURL == "https://api.africastalking.com" && config.sms.maxAttempts == 8 && config.sms.ratePerSecond == 10)
        config = try GatewayConfig.load(environment: [
            "ENVIRONMENT": "development", "AT_USERNAME": "sandbox", "AT_API_KEY": "k", "AT_SMS_BASE_URL": "https://api.sandbox.africastalking.com",
            "AT_SENDER_ID": "WALLET", "SMS_MAX_ATTEMPTS": "3", "SMS_RATE_PER_SECOND": "0",
        ])
        let at = try #require(config.sms.configuration)
        #expect(at.baseURL == "https://api.sandbox.africastalking.com" && at.username == "sandbox" && at.senderID == "WALLET")
        #expect(!at.description.contains("k)") && config.sms.maxAttempts == 3 && config.sms.ratePerSecond == 0)
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "SMS_MAX_ATTEMPTS": "0"]) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "AT_SMS_BASE_URL": "api.africastalking.com"]) }
    }

    @Test func environmentOverridesTheConfigFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString).env").path
        try "# local settings\nHTTP_PORT=9000\nLOG_LEVEL = 'debug'\nREDIS_URL=\"redis://cache:6390/1\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let config = try GatewayConfig.load(environment: ["HTTP_PORT": "9100", "ENVIRONMENT": "development"], file: GatewayConfig.readFile(at: file))
        #expect(config.httpPort == 9100)
        #expect(config.logLevel == .debug)
        #expect(config.redis.host == "cache" && config.redis.port == 6390 && config.redis.database == 1)
    }

    @Test(arguments: [
        ("HTTP_PORT", "eighty", "HTTP_PORT: must be a whole number from 0 to 65535 (got \"eighty\")"),
        ("HTTP_PORT", "70000", "HTTP_PORT: must be a whole number from 0 to 65535 (got \"70000\")"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: must be one of trace, debug, info, notice, warning, error, critical (got \"loud\")"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT: must be one of development, production (got \"staging\")"),
        ("REDIS_URL", "http://:hunter2@cache:6379", "REDIS_URL: must look like redis://[:password@]host:port/db or redis+cluster://host:port,host:port"),
        ("REDIS_POOL_SIZE", "0", "REDIS_POOL_SIZE: must be a whole number from 1 to 64 (got \"0\")"),
        ("DATABASE_URL", "mysql://db", "DATABASE_URL: must be a postgres:// URL or a libpq connection string"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "-1", "DATABASE_STATEMENT_TIMEOUT_MS: must be a whole number from 0 to 3600000 (got \"-1\")"),
    ])
    func badValueNamesTheVariableAndTheProblem(variable: String, value: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: [variable: value]) }
        #expect(error?.variable == variable)
        #expect(error?.description == message)
        #expect(error?.description.contains("hunter2") == false, "URLs are never echoed: they may hold passwords")
    }

    @Test func pinKeysAreRequiredOutsideDevelopmentFromOneSourceAndNeverEchoed() throws {
        let missing = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: [:]) }
        #expect(missing?.variable == "PIN_KEY_FILE" && missing?.description.contains("required outside development") == true)
        let short = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["PIN_PEPPER": "short-secret"]) }
        #expect(short?.description == "PIN_PEPPER: must be at least 16 bytes")
        // Development without a key: the checkout's own key file, made with a random key on first use.
        let development = try GatewayConfig.load(environment: ["ENVIRONMENT": "development"])
        #expect(development.pinKeys == .file(path: ".data/pin.keys") && development.pinKeyIsDevelopmentDefault)
        let two = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PIN_KEY_FILE": "/keys", "PIN_KEY": "1:00"])
        }
        #expect(two?.description.contains("name one source of PIN keys") == true)
        let slot = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PIN_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so", "PIN_PKCS11_PIN": "1234"])
        }
        #expect(slot?.variable == "PIN_PKCS11_SLOT")
        let token = try GatewayConfig.load(environment: [
            "ENVIRONMENT": "development", "PIN_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so", "PIN_PKCS11_SLOT": "gateway", "PIN_PKCS11_PIN": "1234",
        ])
        #expect(token.pinKeys == .pkcs11(PKCS11Settings(module: "/usr/lib/softhsm/libsofthsm2.so", slot: .tokenLabel("gateway"), label: "ussd-gateway-pin", pin: "1234")))
        #expect(token.pinKeys?.summary.contains("1234") == false, "the token's PIN is never shown")
        // A malformed PIN_KEY is refused when the keys are opened, without repeating it.
        let secret = "1:not-hex-but-a-secret-value"
        let config = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PIN_KEY": secret])
        let refused = #expect(throws: PINKeyError.self) { try config.openPINVault() }
        #expect(refused?.description.contains("not-hex") == false)
        let lock = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "PIN_LOCK_MINUTES": "0"]) }
        #expect(lock?.variable == "PIN_LOCK_MINUTES")
    }

    @Test func groupCommitLanesAndBatchAreReadAndBounded() throws {
        let defaults = try GatewayConfig.load(environment: ["ENVIRONMENT": "development"])
        #expect(defaults.wallet.groupCommit.lanes == 1 && defaults.wallet.groupCommit.maximumBatch == 64)
        let set = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "WALLET_COMMIT_LANES": "8", "WALLET_COMMIT_BATCH": "1"])
        #expect(set.wallet.groupCommit.lanes == 8 && set.wallet.groupCommit.maximumBatch == 1)
        let none = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "WALLET_COMMIT_LANES": "0"]) }
        #expect(none?.variable == "WALLET_COMMIT_LANES")
        let huge = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "WALLET_COMMIT_BATCH": "100000"]) }
        #expect(huge?.variable == "WALLET_COMMIT_BATCH")
    }

    @Test func msisdnCountriesAreReadInOrderAndUnknownOnesRefused() throws {
        #expect(try GatewayConfig.load(environment: ["ENVIRONMENT": "development"]).numberingPlan.countries == [.kenya])
        let served = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "MSISDN_COUNTRIES": "gh, NG,GH"])
        #expect(served.numberingPlan.countries == [.ghana, .nigeria], "in order, each once; the first is the local numbers' country")
        let unknown = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "MSISDN_COUNTRIES": "KE,ZA"]) }
        #expect(unknown?.description == "MSISDN_COUNTRIES: must be country codes among KE, GH, NG, TZ, UG, RW (got ZA)")
        let eastAfrica = try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "MSISDN_COUNTRIES": "TZ,UG,RW,KE"])
        #expect(eastAfrica.numberingPlan.countries == [.tanzania, .uganda, .rwanda, .kenya])
    }

    @Test func executableReportsABadValueInOneLineAndExitsWith2() async throws {
        let child = try ChildProcess.start(
            GatewayBinary.path, ["serve"],
            environment: ["PATH": "/usr/bin:/bin", "HTTP_PORT": "abc", "DATABASE_URL": "postgres://x@127.0.0.1:1/x"]
        )
        let status = await child.wait()
        #expect(status == 2)
        let lines = child.errorOutput.split(separator: "\n")
        #expect(lines == ["ussd-gateway: configuration error: HTTP_PORT: must be a whole number from 0 to 65535 (got \"abc\")"])
    }
}

