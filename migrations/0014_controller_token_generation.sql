-- A point's controller token is derived from the server's CONTROLLER_TOKEN_SECRET
-- and this generation (HMAC-SHA256 of the point id and the generation), so the
-- door worker can present it while the database keeps only its SHA-256 (which
-- still authenticates the controller's events). Rotation bumps the generation.
--
-- Points created before this migration hold the hash of a random token that
-- cannot be derived: rotate their tokens once (the answer is the token to give
-- the controller) before the `http` door driver talks to them.
ALTER TABLE locker_points ADD COLUMN controller_token_generation integer NOT NULL DEFAULT 0;
