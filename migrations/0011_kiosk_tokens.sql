-- A locker point's screen (kiosk) authenticates with its own bearer token,
-- issued and rotated by admins and shown once; only its SHA-256 is stored.
-- NULL: the point has no enrolled screen, and its kiosk routes answer 401.
ALTER TABLE locker_points ADD COLUMN kiosk_token_hash bytea;
CREATE UNIQUE INDEX locker_points_kiosk_token_key ON locker_points (kiosk_token_hash)
    WHERE kiosk_token_hash IS NOT NULL;
