-- Invoicing (spec §6): global invoices of the invoice lines due, one per
-- convention and run, delivered once to outbox/<id-cram>/invoices/.
--
-- An invoice is committed with the lines it takes (invoice_lines.invoice_id),
-- its history entry and its e-mail notice; its file is then delivered once
-- (src/outbox/deliver.rs): the temporary name it was written under is
-- committed (`staged_path`, kept afterwards as the record of that write),
-- renamed into place, and the delivery committed (`delivered_at`).
--
-- The reference is F<id-cram>-<code-convention>-<YYYYMMDD>-<id>: the
-- Europe/Paris day of creation and the invoice's id, AUTOINCREMENT so that
-- no id (hence no reference, no file name) is ever used twice, even should
-- rows be deleted.
CREATE TABLE invoices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    reference       TEXT NOT NULL UNIQUE,
    id_cram         TEXT NOT NULL,
    code_convention TEXT NOT NULL,
    provider        TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('threshold', 'weekly')),
    lines           INTEGER NOT NULL,
    amount          INTEGER NOT NULL,              -- hundredths of euro, the sum of its lines
    created_at      TEXT NOT NULL,                 -- RFC 3339 UTC: the run's instant
    path            TEXT NOT NULL UNIQUE,          -- spool-relative: outbox/<id-cram>/invoices/<reference>.xml
    staged_path     TEXT,                          -- spool-relative temporary name, once written
    delivered_at    TEXT                           -- RFC 3339 UTC, once renamed into place
);
-- Invoices committed but not yet delivered (at most a few, after a crash).
CREATE INDEX invoices_undelivered ON invoices(id) WHERE delivered_at IS NULL;
-- The lines of an invoice are found by invoice_lines_due (invoice_id first).

-- A line is invoiced once: once set, its invoice is never changed.
CREATE TRIGGER invoice_lines_invoiced_once
BEFORE UPDATE OF invoice_id ON invoice_lines
WHEN OLD.invoice_id IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'invoice line already invoiced');
END;
