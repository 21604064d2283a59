-- What a request is, for the admin page's rows and search: its title, its
-- requestor (email, else name) and its page in Thena, from its newest version.
ALTER TABLE requests ADD COLUMN title TEXT;
ALTER TABLE requests ADD COLUMN requestor TEXT;
ALTER TABLE requests ADD COLUMN web_link TEXT;

-- Each delivery received for a request and what ingest made of it (the
-- request's history page), pruned to a bounded length like activity.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    received_ms  INTEGER NOT NULL,
    action       TEXT NOT NULL,
    result       TEXT NOT NULL
);
CREATE INDEX deliveries_request ON deliveries (connection, request_id, id);
CREATE INDEX activity_request ON activity (connection, request_id, id);

-- When a connection paused for the API budget next looks at the org's usage
-- again (written by its worker as it waits; the page says so).
ALTER TABLE connections ADD COLUMN recheck_at_ms INTEGER;

-- A Connect started with "connect it again anyway": the org may already have
-- a connection (else the callback warns first and connects nothing).
ALTER TABLE oauth_states ADD COLUMN same_org_ok INTEGER NOT NULL DEFAULT 0;
