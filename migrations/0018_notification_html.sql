-- The HTML part of an email, rendered from its template with the text part
-- (`body`). NULL for SMS and for emails queued before templates. Blanked with
-- `body` once a message carrying a one-time code is delivered or given up.
ALTER TABLE notifications ADD COLUMN html_body text;
