//! `import KIND FILE`: one caisse reference-data file (or one order
//! document, for `evaluations` and `decisions`) into the database.
//!
//! Prints the one-line summary (`providers: 12 rows applied (3 new, 9
//! updated)`) and exits 0; a bad file exits 2 with every bad row (or every
//! problem of a document) listed and nothing applied.
//!
//! Then writes what the import made owed to providers (order listings,
//! documents: [`crate::outbound::publish_due`]) when no running gateway
//! holds the spool; otherwise the running gateway writes them, as the only
//! writer of the spool's outputs.

use anyhow::{bail, Context, Result};

use super::{Ctx, ImportArgs, Outcome};
use crate::import::{self, Kind};
use crate::pipeline::SpoolLock;

pub fn run(ctx: &Ctx, a: &ImportArgs) -> Result<Outcome> {
    let kind: Kind = a.kind.parse()?;
    let meta = std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if meta.len() > ctx.cfg.limits.max_file_size {
        bail!(
            "{} is larger than [limits] max_file_size ({} bytes)",
            a.file.display(),
            ctx.cfg.limits.max_file_size
        );
    }
    let bytes = crate::fsutil::read(&a.file)?;
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| a.file.display().to_string());
    let mut conn = crate::store::open(&ctx.cfg.paths.database)?;
    let summary = import::import_file(&mut conn, &ctx.cfg, kind, &name, &bytes, ctx.clock.now())?;
    tracing::info!(kind = %kind, file = %name, rows = summary.rows, new = summary.new, updated = summary.updated, "import applied");
    println!("{summary}");
    publish(ctx, &mut conn)?;
    Ok(Outcome::Ok)
}

/// Writes the outbound files owed, unless a running gateway holds the spool.
fn publish(ctx: &Ctx, conn: &mut rusqlite::Connection) -> Result<()> {
    let state = ctx.cfg.paths.spool.join("state");
    crate::fsutil::create_dir_all(&state)?;
    let Some(_lock) = SpoolLock::try_acquire(&state.join("gateway.lock"))? else {
        tracing::info!("a running gateway holds the spool: it writes the outbound files owed");
        return Ok(());
    };
    let done = crate::outbound::publish_due(conn, &ctx.cfg, ctx.clock.now())
        .context("the import is applied, but its outbound files were not all written (retried at the next run)")?;
    if !done.is_empty() {
        tracing::info!(
            documents = done.documents,
            listings = done.listings,
            "outbound files written"
        );
    }
    Ok(())
}
