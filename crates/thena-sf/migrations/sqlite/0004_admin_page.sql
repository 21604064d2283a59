-- The admin page: sessions (the cookie is kept only as its SHA-256) and the
-- OAuth flows under way (single use; the PKCE verifier sealed).
CREATE TABLE admin_sessions (
    id_hash        TEXT PRIMARY KEY,
    csrf           TEXT NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);

CREATE TABLE oauth_states (
    state_hash     TEXT PRIMARY KEY,
    session_hash   TEXT NOT NULL,
    connection     TEXT NOT NULL,
    login_url      TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    verifier_enc   BLOB NOT NULL,
    created_at_ms  INTEGER NOT NULL
);
