-- Connections to Salesforce orgs. Secrets are sealed (crypto.rs); the webhook
-- token is kept only as its SHA-256.
CREATE TABLE connections (
    name                TEXT PRIMARY KEY,
    login_url           TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    client_secret_enc   BLOB,
    access_token_enc    BLOB NOT NULL,
    refresh_token_enc   BLOB,
    instance_url        TEXT NOT NULL,
    id_url              TEXT NOT NULL,
    issued_at_ms        INTEGER NOT NULL,
    webhook_token_hash  TEXT NOT NULL,
    signing_secret_enc  BLOB,
    connected_at        TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'healthy',
    status_reason       TEXT,
    provisioned_at      TEXT,
    updated_at          TEXT NOT NULL
);

-- The Text field made for each custom category, per connection.
CREATE TABLE category_fields (
    connection  TEXT NOT NULL REFERENCES connections(name) ON DELETE CASCADE,
    category    TEXT NOT NULL,
    field       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (connection, category),
    UNIQUE (connection, field)
);
