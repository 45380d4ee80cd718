//! `evaluations` and `decisions` imports: one PDF document of an order,
//! named `<rf-commande>.pdf`, routed to the ergothérapeute holding the
//! order (spec §5, §6 "Documents").
//!
//! Refused whole, every problem named ([`ImportError::Refused`]), when the
//! name is not `<rf-commande>.pdf`, when the bytes are not a PDF (no
//! `%PDF-` header, no `%%EOF` marker near the end: an empty file, a renamed
//! text file, a truncated copy), or when no such order was imported.
//!
//! Accepted: the bytes are kept under `archive/caisse/<kind>/` (named by
//! order and content, so writing them again after a crash gives the same
//! file), and in one transaction: a `documents` row owing the copy to
//! `outbound/<provider>/documents/<rf-commande>.<kind>.pdf`, the
//! provider's `commandes` listing marked, an e-mail to its users, history;
//! a decision also closes the case (`clos`). A published document is never
//! replaced: a later, different version of the same order's document takes
//! a counter (`<rf-commande>.2.evaluation.pdf`, …). The same bytes imported
//! again change nothing.

use rusqlite::{params, Connection, OptionalExtension};

use super::{fields, Ctx, ImportError, ImportSummary, Kind, Scope};
use crate::habitat::{self, Listing, Order, OrderState};

/// A PDF ends with `%%EOF`, possibly followed by a line end or some bytes
/// of padding: readers look for it within the last 1024 bytes.
const EOF_WINDOW: usize = 1024;

/// What an imported document is for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// The housing part of the needs evaluation.
    Evaluation,
    /// The aid decision notice: it closes the case.
    Decision,
}

impl DocKind {
    /// As stored in `documents.kind` and in the published name.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Evaluation => "evaluation",
            DocKind::Decision => "decision",
        }
    }

    fn of(kind: Kind) -> Option<DocKind> {
        match kind {
            Kind::Evaluations => Some(DocKind::Evaluation),
            Kind::Decisions => Some(DocKind::Decision),
            _ => None,
        }
    }
}

/// `outbound/<provider>/documents/<rf>.<kind>.pdf`, `<rf>.<n>.<kind>.pdf`
/// for the n-th version (n ≥ 2).
pub fn outbound_path(provider: &str, rf: &str, kind: DocKind, version: i64) -> String {
    if version <= 1 {
        format!("outbound/{provider}/documents/{rf}.{}.pdf", kind.as_str())
    } else {
        format!("outbound/{provider}/documents/{rf}.{version}.{}.pdf", kind.as_str())
    }
}

/// The order reference a document name gives (`<rf-commande>.pdf`, the
/// extension in any case).
fn rf_of_name(name: &str) -> Result<String, String> {
    let stem = name
        .len()
        .checked_sub(4)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".pdf"))
        .map(|i| &name[..i]);
    let Some(stem) = stem else {
        return Err("the name must be <rf-commande>.pdf (the reference of the order, then .pdf)".into());
    };
    fields::rf_commande(stem).map_err(|e| format!("the name must be <rf-commande>.pdf: {e}"))
}

/// Whether `bytes` look like a whole PDF file: `%PDF-` first, `%%EOF` in
/// the last 1024 bytes.
pub fn check_pdf(bytes: &[u8]) -> Result<(), Vec<String>> {
    if bytes.is_empty() {
        return Err(vec!["the file is empty: a PDF document is expected".into()]);
    }
    let mut problems = Vec::new();
    if !bytes.starts_with(b"%PDF-") {
        problems.push("not a PDF document: it does not start with %PDF-".to_string());
    }
    let tail = &bytes[bytes.len().saturating_sub(EOF_WINDOW)..];
    if memchr::memmem::find(tail, b"%%EOF").is_none() {
        problems.push("not a complete PDF document: no %%EOF marker at its end (truncated, or not a PDF)".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let kind = DocKind::of(ctx.kind).ok_or(ImportError::Unsupported(ctx.kind))?;
    let mut problems = Vec::new();
    let rf = rf_of_name(ctx.name).map_err(|p| problems.push(p)).ok();
    if let Err(p) = check_pdf(ctx.bytes) {
        problems.extend(p);
    }
    let order = match &rf {
        Some(rf) => {
            let o = Order::load(tx, rf)?;
            if o.is_none() {
                problems.push(format!("no order {rf} was imported (import the orders file first)"));
            }
            o
        }
        None => None,
    };
    let (Some(order), true) = (order, problems.is_empty()) else {
        return Err(ImportError::Refused {
            kind: ctx.kind,
            name: ctx.name.to_string(),
            problems,
        });
    };
    let rf = order.rf_commande.as_str();
    let sha = ctx.sha256();

    // The same bytes again: nothing new.
    let known: Option<String> = tx
        .query_row(
            "SELECT path FROM documents WHERE kind = ?1 AND rf_commande = ?2 AND sha256 = ?3",
            params![kind.as_str(), rf, sha],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(path) = known {
        return Ok(ImportSummary {
            kind: ctx.kind,
            rows: 1,
            new: 0,
            updated: 0,
            note: Some(format!(
                "{} is already imported for order {rf} (same content, {}): nothing new",
                ctx.name,
                published_name(&path)
            )),
        });
    }

    // The bytes kept first (same name for the same content: a retry after
    // a crash writes the same file), then the record.
    let source = format!("archive/caisse/{}/{rf}-{}.pdf", ctx.kind.as_str(), &sha[..16]);
    crate::fsutil::write_atomic(&ctx.spool.abs(&source), ctx.bytes)?;

    let versions: i64 = tx.query_row(
        "SELECT COUNT(*) FROM documents WHERE kind = ?1 AND rf_commande = ?2",
        params![kind.as_str(), rf],
        |r| r.get(0),
    )?;
    let mut version = versions + 1;
    let path = loop {
        let candidate = outbound_path(&order.provider, rf, kind, version);
        let taken = tx
            .query_row("SELECT 1 FROM documents WHERE path = ?1", [&candidate], |_| Ok(()))
            .optional()?
            .is_some();
        if !taken {
            break candidate;
        }
        version += 1;
    };
    let at = ctx.stamp();
    tx.execute(
        "INSERT INTO documents (kind, rf_commande, provider, sha256, size, source_path, path, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            kind.as_str(),
            rf,
            order.provider,
            sha,
            ctx.bytes.len() as i64,
            source,
            path,
            at
        ],
    )?;
    // A decision closes the case; a case already closed (sans suite, or an
    // earlier decision) keeps its state and closing date.
    let closes = kind == DocKind::Decision && !order.state.is_closed();
    if closes {
        tx.execute(
            "UPDATE orders SET state = ?2, closed_at = ?3, updated_at = ?3 WHERE rf_commande = ?1",
            params![rf, OrderState::Clos, at],
        )?;
    }
    habitat::mark_listing(tx, &order.provider, Listing::Commandes)?;
    let mut m = mail(kind, &order, &path, version, &sha);
    m.recipients = crate::accounts::recipients(tx, &order.provider)?;
    crate::mail::enqueue(tx, ctx.now, &m)?;

    let mut note = format!(
        "{} for order {rf}, routed to {} as {}",
        ctx.name,
        order.provider,
        published_name(&path)
    );
    if version > 1 {
        note.push_str(&format!(" (version {version})"));
    }
    if closes {
        note.push_str("; the case is closed");
    }
    let summary = ImportSummary {
        kind: ctx.kind,
        rows: 1,
        new: 1,
        updated: 0,
        note: Some(note),
    };
    let scope = Scope {
        id_cram: Some(&order.id_cram),
        provider: Some(&order.provider),
        convention: Some(&order.code_convention),
    };
    ctx.record(tx, &summary, "habitat", "documents", scope)?;
    Ok(summary)
}

/// `documents/<file>`: the document as the provider sees it under `/out`.
pub fn published_name(path: &str) -> String {
    match path.rsplit_once("/documents/") {
        Some((_, file)) => format!("documents/{file}"),
        None => path.to_string(),
    }
}

/// The e-mail telling the provider that a document of its order is there,
/// keyed `evaluation:<rf>:<sha>` or `decision:<rf>:<sha>` (the mail history
/// files these causes under `habitat`).
fn mail(kind: DocKind, order: &Order, path: &str, version: i64, sha: &str) -> crate::mail::Message {
    let rf = &order.rf_commande;
    let file = published_name(path);
    let again = if version > 1 {
        " (nouvelle version : la précédente reste disponible)"
    } else {
        ""
    };
    let (subject, what, closed) = match kind {
        DocKind::Evaluation => (
            format!("PPAS : évaluation de la commande {rf}"),
            "La partie Habitat du dossier d'évaluation des besoins",
            "",
        ),
        DocKind::Decision => (
            format!("PPAS : notification de décision de la commande {rf}"),
            "La notification de décision de l'aide Habitat",
            "Le dossier est clos.\n\n",
        ),
    };
    let body = format!(
        "Bonjour,\n\n{what} de la commande d'intervention {rf} (caisse {}, convention {}) est disponible \
         par SFTP{again} :\n  /out/{file}\n\n{closed}\
         Les documents restent disponibles 12 mois après leur publication : pensez à les télécharger.\n\n\
         Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
        order.id_cram, order.code_convention
    );
    crate::mail::Message {
        dedup_key: format!("{}:{rf}:{}", kind.as_str(), &sha[..16]),
        recipients: Vec::new(),
        subject,
        body,
        secret: false,
    }
}

#[cfg(test)]
mod tests;
