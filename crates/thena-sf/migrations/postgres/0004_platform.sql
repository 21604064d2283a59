-- The Thena webhook app feeding each connection, from its installation events.
ALTER TABLE connections ADD COLUMN thena_org_id TEXT;
ALTER TABLE connections ADD COLUMN thena_team_ids TEXT;
ALTER TABLE connections ADD COLUMN thena_app_event TEXT;
ALTER TABLE connections ADD COLUMN thena_app_at TEXT;
-- When each request was created: a comment or CSAT event writes the record
-- on its own and must say the same requestCreatedAt__c.
ALTER TABLE requests ADD COLUMN created_ms BIGINT;
-- Each platform ticket's comments (Salesforce's thread fields are written whole).
CREATE TABLE ticket_comments (
    connection  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    comment_id  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    comment     TEXT NOT NULL,
    PRIMARY KEY (connection, request_id, comment_id)
);
