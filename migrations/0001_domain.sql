-- Lockers domain schema.
--
-- The database enforces every invariant it can: status values are CHECKed,
-- relations are foreign keys, "at most one active item per locker" is a partial
-- unique index, and "one charge per item and hour" is a unique constraint, so a
-- bug or a race in the application cannot write an impossible state.
-- Money is integer minor units (paise) plus an ISO 4217 code, never floats.
-- Applied migrations are never edited; later changes go in new files.

-- Accounts -------------------------------------------------------------------

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    name              text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Stored normalised (lower-case); uniqueness is on the stored value.
    email             text        NOT NULL,
    -- E.164, e.g. +919876543210.
    phone             text,
    -- Argon2id PHC string; NULL for accounts that only ever log in by OTP.
    password_hash     text,
    role              text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified_at timestamptz,
    phone_verified_at timestamptz,
    -- A disabled user's tokens stop working at once (checked on every request).
    disabled_at       timestamptz,
    -- Carried in access tokens; bumping it (password reset, disabling) ends
    -- every outstanding access token of the user at once.
    session_epoch     integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{6,14}$')
);

-- Opaque refresh tokens, stored as SHA-256 of the token. Every rotation makes a
-- new row in the same family; presenting a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Absolute lifetime of the family, copied from its first token.
    expires_at  timestamptz NOT NULL,
    -- Set when this token was exchanged for a new pair.
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Places and lockers ------------------------------------------------------------

CREATE TABLE states (
    id         uuid PRIMARY KEY,
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX states_name_key ON states (lower(name));

CREATE TABLE cities (
    id         uuid PRIMARY KEY,
    state_id   uuid        NOT NULL REFERENCES states (id) ON DELETE RESTRICT,
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cities_name_key ON cities (state_id, lower(name));

-- A locker point is one cabinet of lockers at an address, driven by one controller.
CREATE TABLE locker_points (
    id                    uuid PRIMARY KEY,
    city_id               uuid        NOT NULL REFERENCES cities (id) ON DELETE RESTRICT,
    name                  text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    address               text        NOT NULL CHECK (char_length(address) BETWEEN 1 AND 500),
    -- Base URL of the door controller (protocol v1); NULL under the simulated driver.
    controller_url        text,
    -- SHA-256 of the controller's bearer token; the token is shown once at creation.
    controller_token_hash bytea       NOT NULL,
    -- Online = a heartbeat within the last 60 seconds.
    last_heartbeat_at     timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX locker_points_name_key ON locker_points (city_id, lower(name));
CREATE UNIQUE INDEX locker_points_token_key ON locker_points (controller_token_hash);

-- Sizes are reference data: inner dimensions in millimetres.
CREATE TABLE locker_sizes (
    code            text PRIMARY KEY CHECK (code IN ('S', 'M', 'L', 'XL')),
    inner_width_mm  integer NOT NULL CHECK (inner_width_mm > 0),
    inner_height_mm integer NOT NULL CHECK (inner_height_mm > 0),
    inner_depth_mm  integer NOT NULL CHECK (inner_depth_mm > 0)
);
INSERT INTO locker_sizes (code, inner_width_mm, inner_height_mm, inner_depth_mm) VALUES
    ('S', 380, 90, 640),
    ('M', 380, 190, 640),
    ('L', 380, 390, 640),
    ('XL', 500, 600, 640);

CREATE TABLE lockers (
    id         uuid PRIMARY KEY,
    point_id   uuid        NOT NULL REFERENCES locker_points (id) ON DELETE RESTRICT,
    door_no    integer     NOT NULL CHECK (door_no BETWEEN 1 AND 9999),
    size       text        NOT NULL REFERENCES locker_sizes (code),
    -- available -> reserved -> occupied -> available; maintenance set by an admin
    -- or by a door command that ran out of retries.
    status     text        NOT NULL DEFAULT 'available'
                           CHECK (status IN ('available', 'reserved', 'occupied', 'maintenance')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lockers_door_key UNIQUE (point_id, door_no)
);
CREATE INDEX lockers_point_status_idx ON lockers (point_id, status, size);

-- Exchanges ---------------------------------------------------------------------

CREATE TABLE items (
    id             uuid PRIMARY KEY,
    locker_id      uuid        NOT NULL REFERENCES lockers (id) ON DELETE RESTRICT,
    sender_id      uuid        NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name           text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description    text        CHECK (char_length(description) <= 2000),
    receiver_phone text        CHECK (receiver_phone ~ '^\+[1-9][0-9]{6,14}$'),
    receiver_email text,
    -- reserved -> stored -> collected | expired -> returned; reserved -> cancelled;
    -- stored | expired -> force_removed.
    status         text        NOT NULL DEFAULT 'reserved'
                               CHECK (status IN ('reserved', 'stored', 'collected', 'expired',
                                                 'returned', 'cancelled', 'force_removed')),
    reserved_at    timestamptz NOT NULL DEFAULT now(),
    -- A reservation not dropped off by then is cancelled by the sweep.
    dropoff_by     timestamptz NOT NULL,
    stored_at      timestamptz,
    -- End of the pickup window; set when stored.
    pickup_by      timestamptz,
    closed_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT items_receiver_known CHECK (receiver_phone IS NOT NULL OR receiver_email IS NOT NULL),
    CONSTRAINT items_stored_has_window CHECK (status IN ('reserved', 'cancelled') OR (stored_at IS NOT NULL AND pickup_by IS NOT NULL))
);
-- At most one item occupies a locker at a time.
CREATE UNIQUE INDEX items_one_active_per_locker ON items (locker_id)
    WHERE status IN ('reserved', 'stored', 'expired');
CREATE INDEX items_sender_idx ON items (sender_id, created_at DESC);

-- One-time codes: every purpose uses the same mechanism (see DESIGN.md).
CREATE TABLE one_time_codes (
    id           uuid PRIMARY KEY,
    purpose      text        NOT NULL CHECK (purpose IN ('verify', 'login', 'reset', 'pickup', 'return')),
    -- The normalised email or E.164 phone the code was sent to.
    contact      text        NOT NULL,
    user_id      uuid        REFERENCES users (id) ON DELETE CASCADE,
    item_id      uuid        REFERENCES items (id) ON DELETE CASCADE,
    -- HMAC-SHA256(OTP_PEPPER, code || id); the code itself is never stored.
    code_hash    bytea       NOT NULL,
    failed_tries integer     NOT NULL DEFAULT 0 CHECK (failed_tries BETWEEN 0 AND 5),
    expires_at   timestamptz NOT NULL,
    -- Set by the single conditional UPDATE that redeems the code.
    consumed_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX one_time_codes_lookup_idx ON one_time_codes (purpose, contact, created_at DESC);
CREATE INDEX one_time_codes_item_idx ON one_time_codes (item_id) WHERE item_id IS NOT NULL;

-- One row per physical door action; its id is the controller's Idempotency-Key.
CREATE TABLE door_commands (
    id         uuid PRIMARY KEY,
    locker_id  uuid        NOT NULL REFERENCES lockers (id) ON DELETE RESTRICT,
    item_id    uuid        REFERENCES items (id) ON DELETE RESTRICT,
    reason     text        NOT NULL CHECK (reason IN ('deposit', 'pickup', 'return', 'force_clear')),
    -- pending -> sent -> acked, or -> failed after retries run out.
    status     text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'acked', 'failed')),
    attempts   integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    acked_at   timestamptz
);
CREATE INDEX door_commands_locker_idx ON door_commands (locker_id, created_at DESC);

-- Notification outbox: a message is a row first, then a job that delivers it.
CREATE TABLE notifications (
    id                  uuid PRIMARY KEY,
    channel             text        NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient           text        NOT NULL,
    -- What the message is about, e.g. 'otp_login' or 'item_collected'.
    kind                text        NOT NULL,
    subject             text,
    body                text        NOT NULL,
    -- Bodies carrying a one-time code are blanked once delivered or given up.
    sensitive           boolean     NOT NULL DEFAULT false,
    -- pending -> sent, or -> failed when the provider refuses or retries run out.
    status              text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    provider            text,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz
);
CREATE INDEX notifications_recipient_idx ON notifications (recipient, created_at DESC);

-- Money -----------------------------------------------------------------------

-- Price per started hour for a locker size; the newest row not in the future applies.
CREATE TABLE tariffs (
    id                 uuid PRIMARY KEY,
    size               text        NOT NULL REFERENCES locker_sizes (code),
    amount_paise       bigint      NOT NULL CHECK (amount_paise >= 0),
    currency           char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    valid_from         timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tariffs_size_from_key UNIQUE (size, valid_from)
);

-- One line per item and started hour; the unique key makes accrual idempotent,
-- so a repeated or duplicated billing run never charges twice.
CREATE TABLE charges (
    id           uuid PRIMARY KEY,
    item_id      uuid        NOT NULL REFERENCES items (id) ON DELETE RESTRICT,
    hour_start   timestamptz NOT NULL,
    amount_paise bigint      NOT NULL CHECK (amount_paise >= 0),
    currency     char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT charges_item_hour_key UNIQUE (item_id, hour_start)
);

-- The settled bill of an exchange, written once when billing closes.
CREATE TABLE transactions (
    id           uuid PRIMARY KEY,
    item_id      uuid        NOT NULL REFERENCES items (id) ON DELETE RESTRICT,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_paise bigint      NOT NULL CHECK (amount_paise >= 0),
    currency     char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    hours        integer     NOT NULL CHECK (hours >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_item_key UNIQUE (item_id)
);
CREATE INDEX transactions_user_idx ON transactions (user_id, created_at DESC);
CREATE INDEX transactions_created_idx ON transactions (created_at DESC);

-- Audit -------------------------------------------------------------------------

-- Who did what to what, when. Rows are only ever inserted.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL for the system itself (workers, sweeps) or an anonymous caller.
    actor_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    action      text        NOT NULL,
    target_type text        NOT NULL,
    target_id   text,
    before      jsonb,
    after       jsonb,
    client_ip   inet,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, created_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, created_at DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, created_at DESC);
