-- Deliveries seen, for idempotency (webhook-id, or the body's SHA-256).
CREATE TABLE events (
    connection   TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (connection, event_key)
);

-- The newest snapshot waiting to be sent, one per request: ten edits waiting are one write.
CREATE TABLE pending (
    connection     TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    snapshot       TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    version        INTEGER NOT NULL DEFAULT 1,
    enqueued_at_ms INTEGER NOT NULL,
    not_before_ms  INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    parked         INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    PRIMARY KEY (connection, request_id)
);
CREATE INDEX pending_due ON pending (connection, parked, not_before_ms, enqueued_at_ms);

-- What the connector knows of each request.
CREATE TABLE requests (
    connection          TEXT NOT NULL,
    request_id          TEXT NOT NULL,
    state               TEXT NOT NULL,
    reason              TEXT,
    latest_updated_ms   INTEGER NOT NULL,
    synced_updated_ms   INTEGER,
    sf_id               TEXT,
    contact_id          TEXT,
    account_id          TEXT,
    requestor_key       TEXT,
    sent_hash           TEXT,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (connection, request_id)
);
CREATE INDEX requests_state ON requests (connection, state);

-- Records Salesforce refused for good, with its reason.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    snapshot     TEXT NOT NULL,
    code         TEXT NOT NULL,
    message      TEXT NOT NULL,
    fields       TEXT NOT NULL,
    failed_at    TEXT NOT NULL
);
CREATE INDEX dead_letters_conn ON dead_letters (connection, id);

-- What happened, newest last (pruned to a bounded length).
CREATE TABLE activity (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT,
    sf_id        TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX activity_conn ON activity (connection, id);
