-- Audit log: one row per create/delete/ready/failed/denied action, newest = highest id.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    store_id    TEXT,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT
);
CREATE INDEX audit_log_store_id ON audit_log (store_id, id);

-- Idempotency keys of POST /stores: the first answer per (owner, key), replayed on a retry.
CREATE TABLE idempotency_keys (
    owner        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    store_id     TEXT,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (owner, key)
);
