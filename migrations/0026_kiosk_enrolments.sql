-- One-time enrolment codes for a locker point's screen (kiosk). An admin
-- issues one; the screen redeems it once, within ten minutes, and receives a
-- fresh kiosk token (which it keeps in a cookie; the public never types it).
-- Only the SHA-256 of a code is stored. Redeeming is a conditional update of
-- `redeemed_at`, so of two racing redemptions exactly one wins; issuing a new
-- code for a point retires the point's earlier live ones.
CREATE TABLE kiosk_enrolments (
    id uuid PRIMARY KEY,
    point_id uuid NOT NULL REFERENCES locker_points (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Set when redeemed, or when a newer code for the point retired this one.
    redeemed_at timestamptz,
    CONSTRAINT kiosk_enrolments_code_hash_key UNIQUE (code_hash)
);
CREATE INDEX kiosk_enrolments_point_live ON kiosk_enrolments (point_id) WHERE redeemed_at IS NULL;
