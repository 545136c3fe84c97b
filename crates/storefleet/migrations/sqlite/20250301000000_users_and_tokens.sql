-- Users: a name (= the owner of their stores), a role and a store quota.
CREATE TABLE users (
    user_id    TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    max_stores INTEGER NOT NULL CHECK (max_stores >= 0),
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL
);

-- API tokens, by SHA-256 only. `bootstrap`: the built-in admin's token from --admin-token (or the one
-- generated at first start), replaced when the flag changes.
CREATE TABLE api_tokens (
    token_id   TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    token_hash BLOB    NOT NULL UNIQUE,
    bootstrap  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Whose store an audit entry is about, so that a member's view of the log is one query. Every store
-- made before users existed belonged to `admin`.
ALTER TABLE audit_log ADD COLUMN store_owner TEXT;
UPDATE audit_log SET store_owner = 'admin' WHERE store_id IS NOT NULL;
CREATE INDEX audit_log_store_owner ON audit_log (store_owner, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
