-- Repeated refusals from one caller within a minute are one entry with a count (storage/audit.rs).
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
-- Retention deletes by age (--audit-max-age); idempotency keys expire (--idempotency-ttl).
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
