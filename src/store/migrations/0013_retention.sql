-- Retention (spec §6) and the provider's exchange history in its outbound
-- folder (spec §2, `historique.csv`).

-- listings: a third kind, `historique`. SQLite cannot change a CHECK in
-- place: the table is rebuilt (it is small and nothing references it).
CREATE TABLE listings_new (
    provider TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('commandes', 'beneficiaires', 'historique')),
    wanted   INTEGER NOT NULL DEFAULT 0,
    written  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, kind)
) WITHOUT ROWID;
INSERT INTO listings_new (provider, kind, wanted, written)
    SELECT provider, kind, wanted, written FROM listings;
DROP TABLE listings;
ALTER TABLE listings_new RENAME TO listings;

-- Every registered provider, and every provider with entries in the
-- history, gets its historique listing at the next publication (from now
-- on, recording an entry of a provider marks it, and so does the purge).
INSERT INTO listings (provider, kind, wanted, written)
    SELECT provider, 'historique', 1, 0 FROM (
        SELECT provider FROM providers
        UNION
        SELECT provider FROM history WHERE provider IS NOT NULL AND provider <> ''
    );

-- documents: the purge looks a published file up by its path.
CREATE INDEX documents_path ON documents(path);

-- received_files: when the purge removed the archived original (the row
-- and its `archive_path` stay: the record of what was received).
ALTER TABLE received_files ADD COLUMN archive_removed_at TEXT;
-- The archived originals the purge may still remove, by the day they were
-- done: a row leaves the index once its original is removed.
CREATE INDEX received_archived ON received_files(done_at)
    WHERE archive_path IS NOT NULL AND archive_removed_at IS NULL;
