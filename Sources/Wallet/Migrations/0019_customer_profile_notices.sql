-- Every gateway keeps the customers' profiles it read last for the home menu's lookup on every
-- dial (`CustomerProfiles`), and drops one as soon as this tells it the profile changed: a
-- notice on `customer_profiles` with the number, sent when the change commits (and not at all
-- when it rolls back). A profile is what that lookup reads: the number, name, language, status,
-- lock, PIN reset and its completion, and tier. A PIN check that changes none of them (a right
-- PIN, a wrong one short of a lock) sends nothing. A number that registers, or a row that goes,
-- is told too. A gateway keeps profiles only while these triggers are on (`noticesInPlace`). What
-- fires no row trigger sends nothing: TRUNCATE, and writes made with session_replication_role =
-- replica (`pg_restore --disable-triggers`); restart the gateways after either.
CREATE FUNCTION customers_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('customer_profiles', OLD.msisdn);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.msisdn IS DISTINCT FROM OLD.msisdn) THEN
        PERFORM pg_notify('customer_profiles', NEW.msisdn);
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION customers_profile_changed() FROM PUBLIC;

CREATE TRIGGER customers_profile_changed AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.msisdn IS DISTINCT FROM NEW.msisdn OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.language IS DISTINCT FROM NEW.language OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.locked_until IS DISTINCT FROM NEW.locked_until OR OLD.pin_reset_required IS DISTINCT FROM NEW.pin_reset_required
          OR OLD.pin_reset_completed_at IS DISTINCT FROM NEW.pin_reset_completed_at OR OLD.tier IS DISTINCT FROM NEW.tier)
    EXECUTE FUNCTION customers_profile_changed();
CREATE TRIGGER customers_profile_added_or_removed AFTER INSERT OR DELETE ON customers FOR EACH ROW
    EXECUTE FUNCTION customers_profile_changed();
