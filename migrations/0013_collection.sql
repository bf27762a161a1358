-- Collection and return: what an item needs between the right code and the
-- door's acknowledgement, when the open fails for good, and after its pickup
-- window ends.
ALTER TABLE items
    -- When the right pickup or return code was typed and the door command
    -- issued. Set while the open is in flight (no second code is sent or
    -- taken meanwhile); billing stops here if the open fails for good.
    ADD COLUMN collect_requested_at timestamptz,
    -- The price per started hour for hours without a tariff row, as
    -- configured when the code was typed: the door's acknowledgement closes
    -- the bill with it, wherever that acknowledgement is processed.
    ADD COLUMN collect_tariff_paise bigint CHECK (collect_tariff_paise >= 0),
    ADD COLUMN collect_currency char(3) CHECK (collect_currency ~ '^[A-Z]{3}$'),
    -- The pickup (or return) open failed for good: the item is still inside,
    -- flagged for staff, its bill closed at `collect_requested_at`.
    ADD COLUMN pickup_failed_at timestamptz,
    -- End of the return window; set when the pickup window ends.
    ADD COLUMN return_by timestamptz,
    -- Past `return_by` and never taken back: billing closed at `return_by`,
    -- staff alerted to clear the locker.
    ADD COLUMN abandoned_at timestamptz,
    ADD CONSTRAINT items_collect_priced
        CHECK (collect_requested_at IS NULL OR (collect_tariff_paise IS NOT NULL AND collect_currency IS NOT NULL)),
    ADD CONSTRAINT items_expired_has_return_by CHECK (status <> 'expired' OR return_by IS NOT NULL);

-- The sweep's two questions: stored items past their pickup window, expired
-- items past their return window.
CREATE INDEX items_stored_pickup_by_idx ON items (pickup_by) WHERE status = 'stored';
CREATE INDEX items_expired_return_by_idx ON items (return_by) WHERE status = 'expired' AND abandoned_at IS NULL;
