import Basics

extension SimulatorPage {
    public struct Settings: Sendable, Encodable {
        /// The USSD route, with the callback token when there is one.
        public var ussdPath: String
        /// The inbound SMS route, with the callback token when there is one.
        public var smsPath: String
        public var serviceCodes: [String]
        /// The shortcode customers text (`to` of an inbound SMS).
        public var smsShortcode: String
        public var mpesa: String
        public var sms: String
        public var rules: [Rule]
        /// The sandbox's pay-bill route (``DarajaSandbox/paybillPath``) when Daraja is simulated;
        /// the "Pay bill" control is shown only then.
        public var paybillPath: String?
        /// The paybill number customers pay.
        public var paybill: String?
        /// The rail's name (`M-Pesa`, `MoMo`), shown beside its mode.
        public var rail = "M-Pesa"
        /// The country local numbers belong to (the first served): its code, national length and
        /// mobile prefixes, by which the page reads a typed number; and three numbers to try.
        public var country = Country(.kenya)

        public struct Country: Sendable, Encodable {
            public let code: String
            public let length: Int
            public let prefixes: String
            public let samples: [String]

            public init(_ country: MSISDN.Country) {
                (self.code, self.length, self.prefixes) = (country.code, country.nationalLength, String(country.mobilePrefixes.sorted()))
                // A plausible mobile range of each country, then the phone's number.
                let leading = [MSISDN.Country.kenya: "712", .ghana: "241", .nigeria: "8031", .tanzania: "712", .uganda: "772", .rwanda: "788"][country] ?? "7"
                self.samples = (1...3).map { "0" + leading + String(repeating: "0", count: max(0, country.nationalLength - leading.count - 1)) + String($0) }
            }
        }

        /// These settings for a deployment on `rail` whose local numbers are `country`'s.
        public func inMarket(rail: String, country: MSISDN.Country) -> Settings {
            var settings = self
            (settings.rail, settings.country) = (rail, Country(country))
            return settings
        }

        public struct Rule: Sendable, Encodable {
            public let endsIn: String
            public let deposit: String
            public let withdrawal: String
        }

        public init(
            ussdPath: String, smsPath: String, serviceCodes: [String], smsShortcode: String, mpesa: String, sms: String, paybillPath: String? = nil,
            paybill: String? = nil
        ) {
            self.paybillPath = paybillPath
            self.paybill = paybill
            self.ussdPath = ussdPath
            self.smsPath = smsPath
            self.serviceCodes = serviceCodes
            self.smsShortcode = smsShortcode
            self.mpesa = mpesa
            self.sms = sms
            self.rules = SandboxRules.table.map { Rule(endsIn: $0.endsIn, deposit: $0.deposit, withdrawal: $0.withdrawal) }
        }
    }
}
