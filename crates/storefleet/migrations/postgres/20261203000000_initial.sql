-- The PostgreSQL schema: the same tables as migrations/sqlite/ after its four migrations, in one step
-- (PostgreSQL came after them). Both backends run the same queries through sqlx's Any driver
-- (storage/mod.rs), which has no date type: times are ISO 8601 UTC text written by storage/stamp.rs,
-- compared as text. COLLATE "C" makes that comparison bytewise, as SQLite's is; a locale's collation
-- could order punctuation differently. Integers are BIGINT: the code reads them as i64.

-- Audit log: one row per action, newest = highest id. `count`: repeated refusals from one caller within
-- a minute are one entry (storage/audit.rs).
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT COLLATE "C" NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    store_id    TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    remote_addr TEXT,
    store_owner TEXT,
    count       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX audit_log_store_id ON audit_log (store_id, id);
CREATE INDEX audit_log_store_owner ON audit_log (store_owner, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Idempotency keys of POST /stores: the first answer per (owner, key), replayed on a retry.
CREATE TABLE idempotency_keys (
    owner        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    store_id     TEXT,
    created_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Users: a name (= the owner of their stores), a role and a store quota.
CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    max_stores BIGINT NOT NULL CHECK (max_stores >= 0),
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT COLLATE "C" NOT NULL
);

-- API tokens, by SHA-256 only. `bootstrap`: the built-in admin's token from --admin-token.
CREATE TABLE api_tokens (
    token_id   TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    token_hash BYTEA NOT NULL UNIQUE,
    bootstrap  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",
    revoked_at TEXT COLLATE "C"
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Dashboard sessions: only the SHA-256 of a session id, never the id; expiry in Unix seconds.
CREATE TABLE sessions (
    digest     BYTEA PRIMARY KEY,
    token_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
