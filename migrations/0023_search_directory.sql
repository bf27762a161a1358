-- Search by place is answered from an in-process directory of the places and
-- lockers (core/src/places/directory): these triggers tell every intake what
-- changed, so its copy follows commits made by any process.
--
-- `lockers_status`: one notification per locker whose status changed, payload
-- "<locker id> <new status>"; the intake applies it to its copy in place.
-- Notifications are delivered at commit, in commit order, so the last one
-- received for a locker is its committed status.
CREATE FUNCTION lockers_notify_status() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lockers_status', NEW.id::text || ' ' || NEW.status);
    RETURN NULL;
END $$;

CREATE TRIGGER lockers_status_notify
    AFTER UPDATE OF status ON lockers
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION lockers_notify_status();

-- `lockers_places`: the shape of the network changed (a place or locker added,
-- removed, renamed, moved, resized); the intake reloads its copy. One
-- notification per statement (identical payloads collapse within a transaction).
CREATE FUNCTION places_notify_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lockers_places', '');
    RETURN NULL;
END $$;

CREATE TRIGGER states_notify AFTER INSERT OR DELETE OR UPDATE OF name ON states
    FOR EACH STATEMENT EXECUTE FUNCTION places_notify_changed();
CREATE TRIGGER cities_notify AFTER INSERT OR DELETE OR UPDATE OF name, state_id ON cities
    FOR EACH STATEMENT EXECUTE FUNCTION places_notify_changed();
CREATE TRIGGER locker_points_notify AFTER INSERT OR DELETE OR UPDATE OF name, address, city_id ON locker_points
    FOR EACH STATEMENT EXECUTE FUNCTION places_notify_changed();
CREATE TRIGGER lockers_notify AFTER INSERT OR DELETE OR UPDATE OF door_no, size, point_id ON lockers
    FOR EACH STATEMENT EXECUTE FUNCTION places_notify_changed();
CREATE TRIGGER locker_sizes_notify AFTER INSERT OR DELETE OR UPDATE ON locker_sizes
    FOR EACH STATEMENT EXECUTE FUNCTION places_notify_changed();

-- The SQL search these replace: its folded document, the triggers keeping it
-- and its trigram index are no longer read.
DROP TRIGGER states_search_documents ON states;
DROP TRIGGER cities_search_documents ON cities;
DROP TRIGGER locker_points_search_document ON locker_points;
DROP FUNCTION states_refresh_search_documents();
DROP FUNCTION cities_refresh_search_documents();
DROP FUNCTION locker_points_fill_search_document();
DROP INDEX locker_points_search_trgm;
ALTER TABLE locker_points DROP COLUMN search_document;
