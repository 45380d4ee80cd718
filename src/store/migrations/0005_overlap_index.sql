-- The overlap check (L08) reads, for a beneficiary and a prestation, the
-- start and end of the periods already accepted: with dtf in the index it
-- reads only the index (no table row per candidate), and the per-file
-- preload of each key's earliest start and latest end is index-only too.

DROP INDEX accepted_overlap;
CREATE INDEX accepted_overlap ON accepted_lines(nir_per, rf_prstpap, dtd, dtf);
