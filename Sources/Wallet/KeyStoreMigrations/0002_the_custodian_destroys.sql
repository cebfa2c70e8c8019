-- Only the key store's owner, the key custodian, destroys data keys. An approver could call
-- data_key_destroy on any customer's subject (the ledger's customers table shows them), and the key
-- store cannot see whether an erasure was approved: one person could have made an active
-- customer's data unreadable for good. The custodian's `keys sweep` (nightly, in `retention run`)
-- destroys exactly the keys of customers the ledger shows erased, which took two people.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_approver') THEN
        REVOKE EXECUTE ON FUNCTION data_key_destroy(UUID, TEXT) FROM ussd_approver;
    END IF;
END $$;
