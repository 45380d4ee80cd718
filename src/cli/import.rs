//! `import KIND FILE`: one caisse reference-data file into the database.
//!
//! Prints the one-line summary (`providers: 12 rows applied (3 new, 9
//! updated)`) and exits 0; a bad file exits 2 with every bad row listed and
//! nothing applied.

use anyhow::{bail, Context, Result};

use super::{Ctx, ImportArgs, Outcome};
use crate::import::{self, Kind};

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
    Ok(Outcome::Ok)
}
