-- A rolled webhook token stays valid for a grace period the admin picks, so
-- Thena's deliveries keep working until the new one is pasted there.
ALTER TABLE connections ADD COLUMN previous_token_hash TEXT;
ALTER TABLE connections ADD COLUMN previous_token_until_ms BIGINT;
