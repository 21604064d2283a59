-- Connections made by the password grant (developer orgs, the emulator) get
-- no refresh token: they log in again with these, sealed like every secret.
ALTER TABLE connections ADD COLUMN username TEXT;
ALTER TABLE connections ADD COLUMN password_enc BLOB;
