-- Billing state: every received file, its verdict and anomalies, the lines
-- transmitted to the payment chain, and the outputs the gateway owes
-- (transactional outbox: owed in the same transaction as the verdict,
-- written afterwards, idempotently).

CREATE TABLE received_files (
    id             INTEGER PRIMARY KEY,
    provider       TEXT NOT NULL,          -- folder / SFTP account that delivered it
    name           TEXT NOT NULL,          -- file name as delivered
    channel        TEXT NOT NULL,          -- 'sftp' or 'depot'
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    received_at    TEXT NOT NULL,          -- RFC 3339 UTC
    work_path      TEXT NOT NULL UNIQUE,   -- relative to the spool while in flight
    state          TEXT NOT NULL CHECK (state IN ('received', 'decided', 'done')),
    report_stem    TEXT,                   -- '<name>' or '<name>.N' for the N-th report of a name
    verdict        TEXT CHECK (verdict IN ('accepted', 'partial', 'rejected')),
    lines          INTEGER,
    accepted_lines INTEGER,
    accepted_hours INTEGER,                -- hundredths
    rf_borfact     TEXT,
    log_fact       TEXT,
    id_cram        TEXT,
    id_site        TEXT,
    rf_prstpap     TEXT,
    decided_at     TEXT,
    done_at        TEXT,
    archive_path   TEXT,                   -- relative to the spool, once archived
    lines_from     INTEGER,                -- rowids of its accepted_lines
    lines_to       INTEGER
);
CREATE INDEX received_sha ON received_files(sha256);
CREATE INDEX received_borfact ON received_files(rf_borfact, accepted_lines);
CREATE INDEX received_state ON received_files(state);
CREATE INDEX received_name ON received_files(provider, name);

CREATE TABLE anomalies (
    file_id  INTEGER NOT NULL REFERENCES received_files(id),
    seq      INTEGER NOT NULL,
    code     TEXT NOT NULL,
    line     INTEGER,
    xml_line INTEGER,
    field    TEXT,
    message  TEXT NOT NULL,
    PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;

-- Lines transmitted to the payment chain, inserted in file order by the
-- single writer, so that a file's lines are the rowid range
-- received_files.lines_from..lines_to (no per-file index to maintain). Amounts: nb_quant, mt_tu,
-- mt_total in hundredths; amount_e4 = nb_quant × mt_tu in ten-thousandths
-- (what the line consumes of its plan).
CREATE TABLE accepted_lines (
    id         INTEGER PRIMARY KEY,
    file_id    INTEGER NOT NULL REFERENCES received_files(id),
    line_no    INTEGER NOT NULL,
    plan_id    INTEGER REFERENCES plans(id),
    id_cram    TEXT NOT NULL,
    nir_per    TEXT NOT NULL,
    nom_per    TEXT NOT NULL,
    pn_per     TEXT NOT NULL,
    rf_prstpap TEXT NOT NULL,
    id_prest   TEXT NOT NULL,
    dtd        TEXT NOT NULL,
    dtf        TEXT NOT NULL,
    nb_quant   INTEGER NOT NULL,
    mt_tu      INTEGER NOT NULL,
    mt_total   INTEGER NOT NULL,
    bo_regul   TEXT NOT NULL,
    amount_e4  INTEGER NOT NULL
);
CREATE INDEX accepted_overlap ON accepted_lines(nir_per, rf_prstpap, dtd);
CREATE INDEX accepted_plan ON accepted_lines(plan_id);

-- Files the gateway owes: written from the database after the commit,
-- marked done once renamed into place.
CREATE TABLE outputs (
    id      INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES received_files(id),
    kind    TEXT NOT NULL,                 -- outbox, report-xml, report-csv, report-pdf
    path    TEXT NOT NULL UNIQUE,          -- relative to the spool
    done_at TEXT
);
CREATE INDEX outputs_pending ON outputs(done_at);

-- Reference-data files dropped by the caisse, once processed.
CREATE TABLE caisse_imports (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,             -- applied, refused
    detail      TEXT NOT NULL DEFAULT ''
);

-- Errors met by the daemon's workers (what `status` shows).
CREATE TABLE errors (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    worker  TEXT NOT NULL,
    message TEXT NOT NULL
);
