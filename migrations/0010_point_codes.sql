-- Codes typed at a locker point: drop-off, pickup and return. A person at a
-- point's screen types only the code, so a live code must name one item
-- there: each carries a point-scoped lookup hash, HMAC(OTP_PEPPER, point ||
-- code), unique among the point's live codes.
ALTER TABLE one_time_codes DROP CONSTRAINT one_time_codes_purpose_check;
ALTER TABLE one_time_codes ADD CONSTRAINT one_time_codes_purpose_check
    CHECK (purpose IN ('verify', 'login', 'reset', 'dropoff', 'pickup', 'return'));
ALTER TABLE one_time_codes
    ADD COLUMN point_id uuid REFERENCES locker_points (id) ON DELETE CASCADE,
    ADD COLUMN lookup bytea,
    ADD CONSTRAINT one_time_codes_point_lookup CHECK ((point_id IS NULL) = (lookup IS NULL));
-- Unconsumed codes only: the issuer retires expired or exhausted ones that
-- collide before it writes (see core/src/exchange/codes.rs).
CREATE UNIQUE INDEX one_time_codes_point_live_key ON one_time_codes (point_id, lookup)
    WHERE consumed_at IS NULL AND point_id IS NOT NULL;
