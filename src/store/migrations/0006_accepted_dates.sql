-- The period of an accepted line (dtd, dtf) as an INTEGER yyyymmdd
-- (year × 10000 + month × 100 + day: 2026-11-01 is 20261101) instead of
-- the text YYYY-MM-DD. The order is the same; a row and its overlap-index
-- entry are some 12 bytes smaller each, and the overlap check compares
-- integers. The table is rebuilt (SQLite cannot change a column's type in
-- place), its rows converted, with the same rowids: a file's lines stay
-- the range received_files.lines_from..lines_to. Nothing references
-- accepted_lines, so dropping the old table leaves no dangling key.

CREATE TABLE accepted_lines_new (
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
    dtd        INTEGER NOT NULL,           -- yyyymmdd
    dtf        INTEGER NOT NULL,           -- yyyymmdd
    nb_quant   INTEGER NOT NULL,
    mt_tu      INTEGER NOT NULL,
    mt_total   INTEGER NOT NULL,
    bo_regul   TEXT NOT NULL,
    amount_e4  INTEGER NOT NULL
);

-- [+|-]Y…Y-MM-DD (what the earlier versions stored) to yyyymmdd; the year
-- may have more than four digits or a sign.
INSERT INTO accepted_lines_new (id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per,
        rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
SELECT id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per, rf_prstpap, id_prest,
       CAST(substr(dtd, 1, length(dtd) - 6) AS INTEGER) * 10000
         + CAST(substr(dtd, -5, 2) AS INTEGER) * 100 + CAST(substr(dtd, -2) AS INTEGER),
       CAST(substr(dtf, 1, length(dtf) - 6) AS INTEGER) * 10000
         + CAST(substr(dtf, -5, 2) AS INTEGER) * 100 + CAST(substr(dtf, -2) AS INTEGER),
       nb_quant, mt_tu, mt_total, bo_regul, amount_e4
FROM accepted_lines ORDER BY id;

DROP TABLE accepted_lines;
ALTER TABLE accepted_lines_new RENAME TO accepted_lines;
CREATE INDEX accepted_overlap ON accepted_lines(nir_per, rf_prstpap, dtd, dtf);
CREATE INDEX accepted_plan ON accepted_lines(plan_id);
