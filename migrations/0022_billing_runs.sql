-- Hourly accrual as one set-based statement per run (core/src/billing/accrual.rs).
--
-- Each run records itself here, in its own transaction: the latest run at or
-- before a run's time is its watermark, so it charges only the hours started
-- since then (less a margin for late commits; ON CONFLICT keeps overlaps
-- exact) instead of looking up every item's last charged hour.
CREATE TABLE billing_runs (
    run_at      timestamptz PRIMARY KEY,
    items       bigint      NOT NULL CHECK (items >= 0),
    lines       bigint      NOT NULL CHECK (lines >= 0),
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A charge line is identified by its (item, hour): that becomes the primary
-- key (one index build, in place of the unique constraint's) and the random
-- uuid key, which no code reads and which cost a second index write per
-- line, goes.
--
-- The foreign key to items goes too. Its per-line check share-locks the item
-- row, and a run holds the accrual lock (`pg_advisory_xact_lock`) that every
-- close waits for while its caller may hold that item row `FOR UPDATE`: the
-- check would deadlock with the close. Lines are written only by the run
-- (for items it just read) and by a close (for the item it locked), and
-- items are never deleted.
ALTER TABLE charges
    DROP CONSTRAINT charges_item_id_fkey,
    DROP CONSTRAINT charges_pkey,
    DROP CONSTRAINT charges_item_hour_key,
    DROP COLUMN id,
    ADD CONSTRAINT charges_pkey PRIMARY KEY (item_id, hour_start);
