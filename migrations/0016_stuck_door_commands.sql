-- The sweep fails door commands left `pending` or `sent` long past their
-- retry window (core/src/exchange/doors.rs `fail_stuck`): a command whose job
-- the engine gave up on without the handler failing it. Commands stay in the
-- table for good, so without this partial index every sweep would read them
-- all; with it a sweep reads only the few still in flight.
CREATE INDEX door_commands_in_flight_idx ON door_commands (created_at) WHERE status IN ('pending', 'sent');
