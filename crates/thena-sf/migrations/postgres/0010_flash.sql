-- A notice for the session's next page (what its last action did), shown once:
-- notices come from the server, never from the URL.
ALTER TABLE admin_sessions ADD COLUMN flash TEXT;
