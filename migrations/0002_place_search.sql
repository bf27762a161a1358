-- Search by place without GPS: partial, case- and accent-insensitive text
-- across a locker point's name and address and its city and state, served by
-- a trigram index rather than a table scan.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (it reads a dictionary); pinning the dictionary
-- makes this wrapper safe to mark IMMUTABLE and to use in an index.
CREATE FUNCTION lockers_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

-- Folded "point name, address, city, state" kept on each point.
ALTER TABLE locker_points ADD COLUMN search_document text NOT NULL DEFAULT '';

CREATE FUNCTION locker_points_fill_search_document() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    -- A missing city leaves '' so the foreign key, not NOT NULL, reports it.
    NEW.search_document := coalesce(
        (SELECT lockers_fold(NEW.name || ' ' || NEW.address || ' ' || c.name || ' ' || s.name)
           FROM cities c JOIN states s ON s.id = c.state_id
          WHERE c.id = NEW.city_id),
        '');
    RETURN NEW;
END $$;

CREATE TRIGGER locker_points_search_document
    BEFORE INSERT OR UPDATE OF name, address, city_id ON locker_points
    FOR EACH ROW EXECUTE FUNCTION locker_points_fill_search_document();

-- Renaming a city or state, or moving a city, refreshes the documents of the points under it
-- (touching `name` fires the trigger above).
CREATE FUNCTION cities_refresh_search_documents() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE locker_points SET name = name WHERE city_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER cities_search_documents
    AFTER UPDATE OF name, state_id ON cities
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.state_id IS DISTINCT FROM NEW.state_id)
    EXECUTE FUNCTION cities_refresh_search_documents();

CREATE FUNCTION states_refresh_search_documents() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE locker_points p SET name = p.name FROM cities c WHERE p.city_id = c.id AND c.state_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER states_search_documents
    AFTER UPDATE OF name ON states
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION states_refresh_search_documents();

CREATE INDEX locker_points_search_trgm ON locker_points USING gin (search_document gin_trgm_ops);
CREATE INDEX cities_state_idx ON cities (state_id);
CREATE INDEX locker_points_city_idx ON locker_points (city_id);
