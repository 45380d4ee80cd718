-- The ergothérapeute flow (spec §4, §5, §6): intervention orders imported
-- by the caisse, visit attestations received from the ergothérapeutes, the
-- invoice lines they create, the documents routed to them, and the
-- listings owed to every provider's outbound folder.

-- The kind of each received file, read from its root element.
ALTER TABLE received_files ADD COLUMN kind TEXT NOT NULL DEFAULT 'billing'
    CHECK (kind IN ('billing', 'attestations'));

-- Intervention orders ("commandes d'intervention"), keyed by rf-commande.
-- `provider` is the ergothérapeute holding the convention (resolved at
-- import). `state` is what the order listing shows; `relance_at` is set
-- once, when the order is flagged 60 days after its date without a
-- transmitted attestation.
CREATE TABLE orders (
    rf_commande     TEXT PRIMARY KEY,
    id_cram         TEXT NOT NULL,
    code_convention TEXT NOT NULL,
    provider        TEXT NOT NULL REFERENCES providers(provider),
    nir_per         TEXT NOT NULL,
    nom_per         TEXT NOT NULL,
    pn_per          TEXT NOT NULL,
    adresse         TEXT NOT NULL,
    telephone       TEXT NOT NULL,
    ressources      TEXT NOT NULL CHECK (ressources IN ('PS', 'C')),
    dt_commande     TEXT NOT NULL,                 -- YYYY-MM-DD
    state           TEXT NOT NULL DEFAULT 'a_faire'
        CHECK (state IN ('a_faire', 'relance', 'transmise', 'sans_suite', 'clos')),
    relance_at      TEXT,                          -- RFC 3339 UTC, once
    transmitted_at  TEXT,                          -- the attestation's transmission
    closed_at       TEXT,                          -- sans suite, or the decision
    imported_at     TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX orders_provider ON orders(provider, rf_commande);
CREATE INDEX orders_relance ON orders(state, dt_commande);

-- Accepted visit attestations: at most one per order, never changed.
CREATE TABLE attestations (
    id             INTEGER PRIMARY KEY,
    file_id        INTEGER NOT NULL REFERENCES received_files(id),
    item           INTEGER NOT NULL,               -- 1-based attvisite index in its file
    rf_commande    TEXT NOT NULL UNIQUE REFERENCES orders(rf_commande),
    statut         TEXT NOT NULL CHECK (statut IN ('T', 'S')),
    dt_visite      TEXT,                           -- YYYY-MM-DD (T)
    motif          TEXT,                           -- (S)
    commentaire    TEXT NOT NULL DEFAULT '',
    transmitted_at TEXT NOT NULL
);
CREATE INDEX attestations_file ON attestations(file_id);

-- One invoice line per accepted T attestation, for its convention: the
-- visit fee of the caisse (hundredths of euro), due 48 h after the
-- transmission; `invoice_id` is set when an invoice takes it.
CREATE TABLE invoice_lines (
    id              INTEGER PRIMARY KEY,
    attestation_id  INTEGER NOT NULL UNIQUE REFERENCES attestations(id),
    rf_commande     TEXT NOT NULL,
    id_cram         TEXT NOT NULL,
    code_convention TEXT NOT NULL,
    provider        TEXT NOT NULL,
    nir_per         TEXT NOT NULL,
    amount          INTEGER NOT NULL,              -- hundredths of euro
    created_at      TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    invoice_id      INTEGER
);
CREATE INDEX invoice_lines_due ON invoice_lines(invoice_id, code_convention, due_at);

-- Documents of an order imported by the caisse (PDF), routed to the
-- ergothérapeute's outbound/<provider>/documents/.
CREATE TABLE documents (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('evaluation', 'decision')),
    rf_commande TEXT NOT NULL REFERENCES orders(rf_commande),
    provider    TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    source_path TEXT NOT NULL,                     -- spool-relative, under archive/
    path        TEXT NOT NULL,                     -- spool-relative, under outbound/
    imported_at TEXT NOT NULL,
    done_at     TEXT,                              -- copied into outbound/
    UNIQUE (kind, rf_commande, sha256)
);
CREATE INDEX documents_owed ON documents(done_at);

-- Listings owed to a provider's outbound folder (commandes, beneficiaires):
-- every change bumps `wanted` in the transaction that makes it; the
-- publisher writes the listing from the database and records the
-- generation it wrote.
CREATE TABLE listings (
    provider TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('commandes', 'beneficiaires')),
    wanted   INTEGER NOT NULL DEFAULT 0,
    written  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, kind)
) WITHOUT ROWID;
