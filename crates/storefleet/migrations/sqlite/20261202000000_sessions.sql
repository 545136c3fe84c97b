-- Dashboard sessions (api/session.rs, storage/sessions.rs): kept here so that a restart, or another
-- replica, does not sign everybody out. Only the SHA-256 of a session id is stored, never the id.
CREATE TABLE sessions (
    digest BLOB PRIMARY KEY NOT NULL,
    token_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
