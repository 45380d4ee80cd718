-- What the payment chain returns (spec §5 `payments` and `report-anomalies`,
-- §6 Bordereaux and Report anomalies): the payments made, grouped into
-- payment statements ("bordereaux de paiement") published to the provider
-- 48 hours after the payment date, and the rejections of lines after
-- receipt ("anomalies de report") routed to the provider as a report.
-- Amounts and quantities are INTEGER hundredths; dates YYYY-MM-DD text;
-- timestamps RFC 3339 UTC text (fixed width: compared as text).

-- One statement per convention and payment reference. `provider` holds the
-- validated convention (resolved at import). `due_at` is the payment date
-- at 00:00 in Europe/Paris plus 48 hours. `revision` counts the imports
-- that changed its lines (1 when created); `published_revision` is the
-- revision its latest publication shows (0: never published), so a
-- statement is owed while published_revision < revision and due_at has
-- come. `name` is the stem of its files (`bordereau-<code>-<rf-paiement>`),
-- chosen at its first publication; `published_at` the latest one.
CREATE TABLE statements (
    id                 INTEGER PRIMARY KEY,
    id_cram            TEXT NOT NULL,
    code_convention    TEXT NOT NULL,
    rf_paiement        TEXT NOT NULL,
    provider           TEXT NOT NULL REFERENCES providers(provider),
    dt_paiement        TEXT NOT NULL,
    due_at             TEXT NOT NULL,
    revision           INTEGER NOT NULL DEFAULT 1,
    changed_at         TEXT NOT NULL,          -- the import that made `revision`
    published_revision INTEGER NOT NULL DEFAULT 0,
    published_at       TEXT,
    name               TEXT,
    created_at         TEXT NOT NULL,
    UNIQUE (id_cram, code_convention, rf_paiement)
);
CREATE INDEX statements_owed ON statements(due_at) WHERE published_revision < revision;

-- Every publication of a statement: edition 1 is `<name>.{pdf,xml,csv}`,
-- edition N > 1 (the statement completed or corrected by a later import)
-- `<name>.N.{pdf,xml,csv}`. A published file is never written again.
CREATE TABLE statement_editions (
    statement_id INTEGER NOT NULL REFERENCES statements(id),
    edition      INTEGER NOT NULL,
    revision     INTEGER NOT NULL,
    provider     TEXT NOT NULL,
    stem         TEXT NOT NULL,                 -- outbound/<provider>/bordereaux/<stem>.{pdf,xml,csv}
    lines        INTEGER NOT NULL,
    mt_paye      INTEGER NOT NULL,              -- hundredths of euro, the total
    published_at TEXT NOT NULL,
    PRIMARY KEY (statement_id, edition),
    UNIQUE (provider, stem)
) WITHOUT ROWID;

-- Paid lines, keyed as the caisse's file keys them.
CREATE TABLE payments (
    id           INTEGER PRIMARY KEY,
    statement_id INTEGER NOT NULL REFERENCES statements(id),
    rf_paiement  TEXT NOT NULL,
    rf_facture   TEXT NOT NULL,
    nir_per      TEXT NOT NULL,
    dtd_interv   TEXT NOT NULL,
    dtf_interv   TEXT NOT NULL,
    nom_per      TEXT NOT NULL,
    pn_per       TEXT NOT NULL,
    rf_prstpap   TEXT NOT NULL,
    nb_quant     INTEGER NOT NULL,              -- hundredths
    mt_paye      INTEGER NOT NULL,              -- hundredths of euro
    imported_at  TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (rf_paiement, rf_facture, nir_per, dtd_interv)
);
CREATE INDEX payments_statement ON payments(statement_id);

-- Rejections after receipt, keyed as the caisse's file keys them, each
-- resolved to the line of the billing file it names: the received file
-- (its rf-borfact), the accepted line (accepted_lines.id, no foreign key,
-- as in accepted_periods) and its `factprest` index.
CREATE TABLE report_anomalies (
    id          INTEGER PRIMARY KEY,
    rf_facture  TEXT NOT NULL,
    nir_per     TEXT NOT NULL,
    dtd_interv  TEXT NOT NULL,
    dtf_interv  TEXT NOT NULL,
    code        TEXT NOT NULL,
    motif       TEXT NOT NULL,
    file_id     INTEGER NOT NULL REFERENCES received_files(id),
    line_id     INTEGER NOT NULL,
    line_no     INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (rf_facture, nir_per, dtd_interv)
);

-- The reports of anomalies owed to providers: one per import and billing
-- file concerned, named `<rf-borfact>.anomalies-report.<n>` (n counts the
-- reports of that rf-borfact for the provider), written into
-- outbound/<provider>/reports/ by the outbound publisher, which sets
-- `done_at`. What each says is fixed when it is created
-- (anomaly_report_lines), so writing it again gives the same bytes.
CREATE TABLE anomaly_reports (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES received_files(id),
    provider    TEXT NOT NULL,
    rf_borfact  TEXT NOT NULL,
    occurrence  INTEGER NOT NULL,
    stem        TEXT NOT NULL,
    source      TEXT NOT NULL,                  -- the imported file's name
    created_at  TEXT NOT NULL,
    done_at     TEXT,
    UNIQUE (provider, stem)
);
CREATE INDEX anomaly_reports_owed ON anomaly_reports(done_at);

CREATE TABLE anomaly_report_lines (
    report_id  INTEGER NOT NULL REFERENCES anomaly_reports(id),
    seq        INTEGER NOT NULL,                -- 1-based, in line order
    anomaly_id INTEGER NOT NULL REFERENCES report_anomalies(id),
    line_id    INTEGER NOT NULL,                -- accepted_lines.id
    line_no    INTEGER NOT NULL,                -- factprest index
    code       TEXT NOT NULL,
    motif      TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
) WITHOUT ROWID;
