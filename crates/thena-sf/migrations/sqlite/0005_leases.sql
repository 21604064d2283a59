-- Replicas and the leases that divide connections between them (store/leases.rs).
CREATE TABLE replicas (
    id            TEXT PRIMARY KEY,
    heartbeat_ms  INTEGER NOT NULL
);

CREATE TABLE leases (
    connection     TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    epoch          INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);
