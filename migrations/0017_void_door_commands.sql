-- A door command whose item no longer waits for that open (a force-clear
-- removed the item while a pickup was still being retried, say) is `void`:
-- never sent, and without the alarms of `failed`. Otherwise a late retry
-- could open the locker on the next sender's parcel.
ALTER TABLE door_commands DROP CONSTRAINT door_commands_status_check;
ALTER TABLE door_commands ADD CONSTRAINT door_commands_status_check
    CHECK (status IN ('pending', 'sent', 'acked', 'failed', 'void'));
