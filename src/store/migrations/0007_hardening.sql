-- Hardening of the core (one migration for the columns every area needs).
--
-- received_files: each attempt to finish a file is counted; after
-- `[intake] max_attempts` failed attempts the file is quarantined (its work
-- copy moved to quarantine/<provider>/, `quarantined_at` set) and no longer
-- retried until `ppas-gateway retry` clears the mark. The stage it reached
-- stays in `state` (received or decided), so a retried file resumes there.
ALTER TABLE received_files ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE received_files ADD COLUMN last_error TEXT;
ALTER TABLE received_files ADD COLUMN quarantined_at TEXT;
CREATE INDEX received_quarantined ON received_files(quarantined_at) WHERE quarantined_at IS NOT NULL;

-- users: a temporary (one-time) password must be changed at first login
-- through keyboard-interactive; it may expire.
ALTER TABLE users ADD COLUMN password_temporary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_expires_at TEXT;

-- mail_queue: a body holding a secret (a password) is wiped once delivered;
-- a message that reached its last attempt is marked failed (kept, shown by
-- `status`, re-queued by `mail retry`).
ALTER TABLE mail_queue ADD COLUMN secret INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_queue ADD COLUMN failed_at TEXT;

-- outputs: the payment chain's file is delivered once. Its temporary file
-- is recorded (`staged_path`) once written and flushed, before its rename;
-- `done_at` is committed right after the rename. Recovery then knows, for
-- an outbox file in between, whether the rename happened (the temporary
-- file is gone) without writing it again.
ALTER TABLE outputs ADD COLUMN staged_path TEXT;
