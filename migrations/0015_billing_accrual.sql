-- Hourly billing accrual (core/src/billing/accrual.rs) walks the open items
-- (stored or expired) in id order, in batches. Items stay in the table for
-- good once collected, so without this partial index every run would read
-- them all; with it a run reads only the items still in lockers.
CREATE INDEX items_billing_open_idx ON items (id) WHERE status IN ('stored', 'expired');
