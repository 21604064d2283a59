-- The doctor's last result per connection (shown without calling Salesforce).
CREATE TABLE doctor_results (
    connection     TEXT PRIMARY KEY,
    checked_at_ms  INTEGER NOT NULL,
    checks         TEXT NOT NULL
);
-- Degraded = dead letters in the last hour: found by time.
CREATE INDEX dead_letters_time ON dead_letters (connection, failed_at);
