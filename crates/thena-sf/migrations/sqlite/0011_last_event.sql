-- When a webhook last arrived for the connection (updated at most once a second).
ALTER TABLE connections ADD COLUMN last_event_ms INTEGER;
