-- A session belongs to the admin password it was made with: changing the
-- password ends every session. Sessions of before have none: they end too.
ALTER TABLE admin_sessions ADD COLUMN pw TEXT NOT NULL DEFAULT '';
