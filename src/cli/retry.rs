//! `retry FILE|--all`: puts quarantined files back in the queue.
//!
//! In: the state database (which must exist; nothing is created). Out: the
//! quarantine mark cleared and the attempts reset for the files named, in
//! one short transaction that works while the daemon runs; the processor
//! moves each file back to `work/` and resumes it at its next pass (a
//! rescan of the daemon, or the next `process --once`). Exit 2 when
//! nothing quarantined matches.

use super::{Ctx, Outcome, RetryArgs};
use crate::pipeline::quarantine;

pub fn run(ctx: &Ctx, a: &RetryArgs) -> anyhow::Result<Outcome> {
    let mut conn = crate::store::open_existing(&ctx.cfg.paths.database)?;
    let what = if a.all { None } else { a.file.as_deref() };
    let back = quarantine::retry(&mut conn, what)?;
    if back.is_empty() {
        match what {
            Some(w) => anyhow::bail!("no quarantined file matches {w:?} (`status` lists them)"),
            None => {
                println!("aucun fichier en quarantaine");
                return Ok(Outcome::Ok);
            }
        }
    }
    for f in &back {
        println!(
            "remis en file : {}/{} (fichier reçu {}, {} tentative(s))",
            f.provider, f.name, f.id, f.attempts
        );
    }
    let daemon = crate::pipeline::SpoolLock::is_held(&ctx.cfg);
    println!(
        "{} fichier(s) remis en file ; {}",
        back.len(),
        if daemon {
            "le service les reprend à son prochain passage"
        } else {
            "lancez `ppas-gateway process --once` (ou le service) pour les traiter"
        }
    );
    tracing::info!(files = back.len(), "quarantined files put back in the queue");
    Ok(Outcome::Ok)
}
