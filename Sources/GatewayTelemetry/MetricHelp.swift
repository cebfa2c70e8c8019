/// The `# HELP` text of every metric family the gateway exports, by its Prometheus name: what
/// `/metrics` says of each, and what an operator reads next to a panel or an alert
/// (docs/SLO.md lists them too). A family missing here is exported without help, which the
/// `promtool check metrics` test refuses.
public enum MetricHelp {
    public static func text(_ name: String) -> String { Self.texts[name] ?? "" }

    /// Every family with its text, for the test that checks none is missing.
    public static let texts: [String: String] = [
        // HTTP, recorded by Hummingbird's middleware and by the hop server.
        "http_requests_total": "HTTP requests answered, by route pattern, method and status.",
        "http_request_errors_total": "HTTP requests that ended in an error, by route pattern, method and error type.",
        "http_request_duration_seconds": "Time to answer an HTTP request, by route pattern, method and status.",
        "http_active_requests": "HTTP requests being answered now, by method.",
        // USSD.
        "ussd_hops_total": "USSD hops answered, by aggregator (provider), screen and outcome; outcome error is an internal failure the customer saw as an apology.",
        "ussd_hop_duration_seconds": "Time to answer a USSD hop inside the gateway, by aggregator and outcome.",
        "ussd_session_duration_seconds": "Length of ended USSD sessions, from the first hop to the end.",
        "ussd_sessions_ended_total": "USSD sessions ended, by the aggregator's status and the last screen shown.",
        "ussd_active_sessions": "USSD sessions alive in Redis now (every replica reports the same count).",
        "ussd_resumes_total": "Offers to resume an interrupted session, by the customer's choice.",
        "ussd_late_actions_total": "Actions that finished after their hop had been answered, by action.",
        "ussd_replies_cut_total": "Replies cut to fit the aggregator's screen, by aggregator.",
        // Money journeys.
        "wallet_journeys_total": "Money journeys ended, by kind and outcome: completed, refused (the customer's own doing) or failed (the gateway or the provider failed it).",
        "wallet_money_total": "Money that entered the wallet (deposits credited) or left it (payouts paid), in whole currency units.",
        // Dependencies and the process.
        "gateway_dependency_up": "Whether this replica reached a dependency at its last probe (1) or not (0), by dependency.",
        "gateway_tls_certificate_expiry_timestamp_seconds": "When a certificate the gateway reads expires (Unix time), by which certificate.",
        "db_pool_wait_duration_seconds": "Time a database call waited for a free connection, by pool.",
        "process_cpu_seconds_total": "CPU time the process has used, user and system, in seconds.",
        "process_resident_memory_bytes": "Resident memory of the process in bytes.",
        "process_virtual_memory_bytes": "Virtual memory of the process in bytes.",
        "process_open_fds": "File descriptors the process has open.",
        "process_max_fds": "The most file descriptors the process may open.",
        "process_start_time_seconds": "When the process started, in Unix time.",
        // SMS.
        "sms_outbox_total": "SMS outbox sends, by outcome.",
        "sms_outbox_backlog": "SMS messages in the outbox waiting to be sent.",
        "sms_outbox_oldest_age_seconds": "Age of the oldest SMS message waiting in the outbox (0 when none waits).",
        "sms_send_duration_seconds": "Time of a call to the SMS provider's send API, by outcome.",
        "sms_inbound_total": "Inbound SMS received, by outcome.",
        "sms_delivery_reports_total": "SMS delivery reports received, by status.",
        // M-Pesa.
        "mpesa_request_duration_seconds": "Time of a call to Daraja, by endpoint and outcome.",
        "mpesa_stk_push_total": "STK push requests, by Daraja's answer.",
        "mpesa_b2c_total": "B2C payment requests, by Daraja's answer.",
        "mpesa_callbacks_total": "Daraja callbacks received, by kind and outcome.",
        "mpesa_conflicts_total": "Provider reports contradicting an earlier one, kept for a person, by kind.",
        "mpesa_paybill_total": "Paybill (C2B) validations and confirmations, by kind and outcome.",
        "mpesa_paybill_unconfirmed_total": "Paybill payments validated but never confirmed in time.",
        "mpesa_paybill_unverified_total": "Paybill confirmations Daraja's Transaction Status could not verify.",
        "mpesa_payouts_needs_review_total": "Payouts the reconciler could not settle and left for a person.",
        "mpesa_status_queries_total": "Transaction Status queries sent, by Daraja's answer.",
        "mpesa_status_answers_total": "Transaction Status answers received, by subject and outcome.",
        "mpesa_payouts_in_flight": "B2C payouts sent and not yet settled.",
        "mpesa_payouts_in_flight_amount": "Amount of the B2C payouts in flight, in whole currency units.",
        "mpesa_payouts_oldest_age_seconds": "Age of the oldest B2C payout in flight (0 when none).",
        "mpesa_deposits_awaiting": "STK deposits asked for and not yet confirmed or failed.",
        "mpesa_deposits_oldest_age_seconds": "Age of the oldest STK deposit awaiting confirmation (0 when none).",
        "mpesa_review_open": "Provider reports waiting for a person's review, by kind.",
        "mpesa_review_oldest_age_seconds": "Age of the oldest provider report waiting for review, by kind.",
        "mpesa_float_balance": "The B2C utility account's balance at Daraja's last Account Balance answer, in whole currency units: the float payouts draw on.",
        "mpesa_float_reported_timestamp_seconds": "When Daraja's last Account Balance answer was completed, in Unix time.",
        "mpesa_float_watched": "Whether this replica asks Daraja for the float on a schedule (1) or not (0: M-Pesa not configured or MPESA_FLOAT_CHECK_SECONDS=0).",
        "mpesa_float_queries_total": "Account Balance queries sent to Daraja, by outcome.",
        // Callbacks and HTTP actions.
        "callback_refusals_total": "Provider callbacks refused (bad token, address or body), by route pattern.",
        "callback_refusals_unaudited_total": "Refused callbacks not written to the refusal log because of its rate limit, by route pattern.",
        "http_action_calls_total": "Calls to menus.json's HTTP backends, by backend and outcome.",
        "http_action_duration_seconds": "Time of a call to a menus.json HTTP backend, by backend.",
        "http_backend_breaker_open": "Whether a menus.json HTTP backend's circuit breaker is open (1) or closed (0), by backend.",
    ]
}
