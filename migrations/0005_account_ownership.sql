-- Account ownership (issue 8): whoever proves an email owns the account.
--
-- Phones are unique among verified phones only: an unverified phone typed by a
-- stranger must not block the real owner's signup, and proving a phone takes it
-- from every unverified holder (api: users::prove_phone, in one transaction).
ALTER TABLE users DROP CONSTRAINT users_phone_key;
CREATE UNIQUE INDEX users_verified_phone_key ON users (phone) WHERE phone_verified_at IS NOT NULL;
-- Lookups by phone (login, code requests, taking a phone from its unverified holders).
CREATE INDEX users_phone_idx ON users (phone) WHERE phone IS NOT NULL;

-- Accounts whose email was never proven expire (UNVERIFIED_ACCOUNT_TTL_SECS);
-- the sweep finds them through this index, which only holds such accounts.
CREATE INDEX users_unverified_created_idx ON users (created_at) WHERE email_verified_at IS NULL;

