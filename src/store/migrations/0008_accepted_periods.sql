-- Accepted lines are written in file order, and a file lists its lines by
-- month and beneficiary name: their NIRs and plans come in an order
-- unrelated to any index of them. Each inserted line went to a random page
-- of each of accepted_lines' two indexes (accepted_overlap, accepted_plan)
-- and its foreign-key check read a random page of plans; once these
-- outgrew SQLite's page cache, pages were written out and read back again
-- and again within one decision.
--
-- Now accepted_lines has no secondary index and no foreign key to plans,
-- so its rows are appended in file order (rowids, the outbox's range); the
-- periods go to accepted_periods below, which the pipeline fills sorted in
-- its key's order, in large chunks, so that each of its pages is visited
-- once per chunk, in order.
--
-- Read by: the overlap check (L08: a period of the same beneficiary and
-- prestation meeting the line's), the per-file plan preload (per plan, the
-- hours already consumed, and per beneficiary and prestation, the latest
-- end accepted); each reads one key range. plan_id and amount_e4 are those
-- of the line (a plan's NIR and prestation are part of its unique key and
-- never change, so a plan's lines are all under its own NIR and prestation).
-- line_id is the line's accepted_lines.id; both rows are written in the
-- same transaction (no foreign key: its check would visit accepted_lines in
-- this table's order, the random order this table exists to avoid).

CREATE TABLE accepted_periods (
    nir_per    TEXT NOT NULL,
    rf_prstpap TEXT NOT NULL,
    dtd        INTEGER NOT NULL,           -- yyyymmdd
    dtf        INTEGER NOT NULL,           -- yyyymmdd
    line_id    INTEGER NOT NULL,           -- accepted_lines.id
    plan_id    INTEGER,                    -- accepted_lines.plan_id
    amount_e4  INTEGER NOT NULL,           -- accepted_lines.amount_e4
    PRIMARY KEY (nir_per, rf_prstpap, dtd, dtf, line_id)
) WITHOUT ROWID;

INSERT INTO accepted_periods (nir_per, rf_prstpap, dtd, dtf, line_id, plan_id, amount_e4)
SELECT nir_per, rf_prstpap, dtd, dtf, id, plan_id, amount_e4
FROM accepted_lines ORDER BY nir_per, rf_prstpap, dtd, dtf, id;

-- accepted_lines rebuilt without its indexes and without the foreign key
-- on plan_id (SQLite cannot drop a constraint in place), keeping its rows
-- and rowids. plan_id is still the id of the plan the line was checked
-- against: the pipeline takes it from the plans it read in the same
-- transaction, and plans are never deleted (imports update them in place).
-- The key to received_files stays (one page, read for every line anyway).
CREATE TABLE accepted_lines_new (
    id         INTEGER PRIMARY KEY,
    file_id    INTEGER NOT NULL REFERENCES received_files(id),
    line_no    INTEGER NOT NULL,
    plan_id    INTEGER,                    -- plans.id
    id_cram    TEXT NOT NULL,
    nir_per    TEXT NOT NULL,
    nom_per    TEXT NOT NULL,
    pn_per     TEXT NOT NULL,
    rf_prstpap TEXT NOT NULL,
    id_prest   TEXT NOT NULL,
    dtd        INTEGER NOT NULL,           -- yyyymmdd
    dtf        INTEGER NOT NULL,           -- yyyymmdd
    nb_quant   INTEGER NOT NULL,
    mt_tu      INTEGER NOT NULL,
    mt_total   INTEGER NOT NULL,
    bo_regul   TEXT NOT NULL,
    amount_e4  INTEGER NOT NULL
);
INSERT INTO accepted_lines_new (id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per,
        rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
SELECT id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per,
       rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4
FROM accepted_lines ORDER BY id;
DROP TABLE accepted_lines;
ALTER TABLE accepted_lines_new RENAME TO accepted_lines;

-- The per-file plan preload reads the plans of the provider's sites with
-- the caisse for the file's prestation. Through the unique index (id_cram,
-- id_site, nir_per, …) it read every prestation's and then each plan's row
-- from the table, in the table's (import) order: a random page a plan.
-- With the prestation before the NIR and the columns it reads in the index,
-- it reads one range of the index alone, in NIR order, which is also the
-- order of its lookups in accepted_periods.
CREATE INDEX plans_preload ON plans(id_cram, id_site, rf_prstpap, nir_per, dt_debut, dt_fin, mt_total, mt_consomme);
