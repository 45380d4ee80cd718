-- Exchange history (spec §7) and the mail queue (spec §6): written by
-- every area in the same transaction as the change they record.

CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,            -- RFC 3339, UTC
    kind        TEXT NOT NULL,            -- received, processed, outbox, chargement, recuperation, import, job, mail
    regime      TEXT,                     -- e.g. "Régime général"
    id_cram     TEXT,
    application TEXT NOT NULL,            -- aide-a-domicile, habitat
    interface   TEXT NOT NULL,            -- e.g. facturation, attestations, referentiel, sftp
    provider    TEXT,
    convention  TEXT,
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX history_at ON history(at);

CREATE TABLE mail_queue (
    id              INTEGER PRIMARY KEY,
    dedup_key       TEXT NOT NULL UNIQUE,  -- one message per cause, ever
    created_at      TEXT NOT NULL,
    recipients      TEXT NOT NULL,         -- comma-separated addresses
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,         -- plain text, UTF-8
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX mail_queue_pending ON mail_queue(sent_at, next_attempt_at);
