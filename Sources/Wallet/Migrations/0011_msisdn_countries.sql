-- Customers' numbers of every country the gateway knows (`MSISDN_COUNTRIES` picks the ones a
-- deployment serves): Kenya 254 and 9 digits from 7 or 1, Ghana 233 and 9 digits from 2 or 5,
-- Nigeria 234 and 10 digits from 7, 8 or 9. The same rule as `MSISDN`.
ALTER TABLE customers DROP CONSTRAINT customers_msisdn_check;
ALTER TABLE customers ADD CONSTRAINT customers_msisdn_check
    CHECK (msisdn ~ '^(254[17][0-9]{8}|233[25][0-9]{8}|234[789][0-9]{9})$');
