-- One token refresh at a time per connection, across processes (connect.rs, StoreSink).
ALTER TABLE connections ADD COLUMN refresh_lock_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN refresh_lock_by TEXT;
