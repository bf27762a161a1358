-- Which delivery run claimed a notification. A run whose claim reached the
-- database but whose answer was lost (a connection cut at the wrong moment)
-- asks again with the same token and gets its claim back, instead of finding
-- the message "claimed by someone" and leaving it unsent.
ALTER TABLE notifications ADD COLUMN claim_token uuid;
