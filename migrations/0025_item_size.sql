-- The size an item was deposited in, on the item (core/src/billing): the
-- price of each hour is the tariff of that size, and the hourly accrual reads
-- a million stored items without joining a million lockers for it (about a
-- second of a run over 1,000,000 items). Copied from the locker when the item
-- is reserved (its `size` references `locker_sizes` already); a locker whose
-- size an admin edits later does not reprice what is inside it.
ALTER TABLE items ADD COLUMN size text;
UPDATE items i SET size = l.size FROM lockers l WHERE l.id = i.locker_id;
ALTER TABLE items ALTER COLUMN size SET NOT NULL;
