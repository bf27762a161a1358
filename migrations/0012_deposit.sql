-- The deposit side of the exchange: drop-off, a door left open, force-clear.

ALTER TABLE items
    -- When the deposit door command was issued (the sender at the locker, or
    -- the drop-off code typed at the point's screen). From then on the
    -- reservation is the door's: the sender cannot cancel it and the
    -- reservation sweep leaves it alone (a failed open cancels it instead).
    ADD COLUMN dropoff_requested_at timestamptz,
    -- When the door first opened for the drop-off (the controller acknowledged
    -- the open, or reported the door open): the parcel may be inside.
    ADD COLUMN dropoff_opened_at    timestamptz,
    -- When the sweep found that door still open past DOOR_CLOSE_TIMEOUT_SECS
    -- (admins alerted, locker in maintenance); set once, so it alerts once.
    ADD COLUMN door_left_open_at    timestamptz,
    -- The pickup window promised at deposit (PICKUP_WINDOW_SECS then):
    -- pickup_by = stored_at + this. Kept with the item because the door's
    -- outcome is recorded by workers and controller events, which see only
    -- the database, and because the terms shown at deposit should hold.
    ADD COLUMN pickup_window_secs   integer NOT NULL DEFAULT 259200 CHECK (pickup_window_secs > 0);

-- The reservation sweep: reservations past their drop-off deadline.
CREATE INDEX items_reserved_dropoff_idx ON items (dropoff_by) WHERE status = 'reserved';
-- The open-door sweep: drop-off doors opened and not closed yet.
CREATE INDEX items_dropoff_open_idx ON items (dropoff_opened_at)
    WHERE status = 'reserved' AND dropoff_opened_at IS NOT NULL AND door_left_open_at IS NULL;

-- One row per admin force-clear, keyed by its door command: the reason (for
-- the audit entry written when the door opens) and the default tariff in force
-- when it was asked (the acknowledgement closes the item's bill with it).
CREATE TABLE force_clears (
    command_id           uuid PRIMARY KEY REFERENCES door_commands (id) ON DELETE CASCADE,
    reason               text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    default_tariff_paise bigint      NOT NULL CHECK (default_tariff_paise >= 0),
    currency             text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at           timestamptz NOT NULL DEFAULT now()
);
