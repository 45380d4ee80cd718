//! `process --once`, `validate` and `run JOB`: the pipeline driven once
//! from the command line (cron-style use, dry runs, jobs by hand).

use super::{Ctx, Outcome, ProcessArgs, RunArgs, ValidateArgs};
use crate::pipeline::{Pipeline, SpoolLock};

/// `process --once`: drains every inbound folder, then exits. Exit 1 when
/// some file of this pass was partial or rejected (cron can alert on it),
/// 2 when a received file could not be finished (after the others).
pub fn run(ctx: &Ctx, a: &ProcessArgs) -> anyhow::Result<Outcome> {
    if !a.once {
        anyhow::bail!("process needs --once (use `serve` to run the daemon)");
    }
    let _lock = SpoolLock::acquire(&ctx.cfg)?;
    let mut p = Pipeline::open(ctx.cfg.clone(), ctx.clock)?;
    let s = p.process_once()?;
    let mail = crate::mail::deliver::run_once(&mut p.conn, &ctx.cfg, &ctx.clock)?;
    println!(
        "{} fichier(s) traité(s) : {} accepté(s), {} partiel(s), {} rejeté(s) ; {} repris après interruption ; \
         référentiel : {} appliqué(s), {} refusé(s) ; e-mails envoyés : {}",
        s.processed, s.accepted, s.partial, s.rejected, s.recovered, s.imports_applied, s.imports_refused, mail.sent
    );
    if s.still_written > 0 {
        println!(
            "{} fichier(s) encore en cours d'écriture : laissé(s) pour le prochain passage",
            s.still_written
        );
    }
    if s.quarantined > 0 {
        println!(
            "{} fichier(s) mis en quarantaine après des échecs répétés (voir `status`, puis `ppas-gateway retry`)",
            s.quarantined
        );
    }
    // An error, not an anomaly of the file (exit 2, spec §8): the pass did
    // what it could; the file stays in flight for the next one.
    if s.failed > 0 {
        anyhow::bail!(
            "{} fichier(s) reçu(s) mais non traité(s) à cause d'une erreur (voir le journal) : repris au prochain passage",
            s.failed
        );
    }
    Ok(if s.all_accepted() {
        Outcome::Ok
    } else {
        Outcome::Anomalies
    })
}

/// `validate [--json] [--provider P] FILE...`: every control against the
/// current state, in a transaction that is rolled back.
pub fn validate(ctx: &Ctx, a: &ValidateArgs) -> anyhow::Result<Outcome> {
    let mut conn = crate::store::open_existing(&ctx.cfg.paths.database)?;
    let verdicts = a
        .files
        .iter()
        .map(|f| crate::pipeline::validate_path(&mut conn, &ctx.cfg, &ctx.clock, f, a.provider.as_deref()))
        .collect::<Vec<_>>();
    let checked = verdicts.into_iter().map(|v| {
        v.map(|v| match v {
            crate::pipeline::Validated::Billing(v) => super::check::Checked::Billing(v),
            crate::pipeline::Validated::Attestations(v) => super::check::Checked::Attestations(v),
        })
    });
    super::check::print_checked(checked, a.json)
}

/// `run JOB`: one scheduled job now.
pub fn run_job(ctx: &Ctx, a: &RunArgs) -> anyhow::Result<Outcome> {
    match a.job.as_str() {
        "mail" => {
            let s = crate::mail::deliver::run_job(&ctx.cfg, &ctx.clock)?;
            println!(
                "e-mails : {} envoyé(s), {} à réessayer, {} en échec (voir `status`, puis `mail retry`), {} différé(s)",
                s.sent, s.retried, s.failed, s.deferred
            );
            Ok(Outcome::Ok)
        }
        "relances" => {
            let _lock = SpoolLock::acquire(&ctx.cfg)?;
            let mut conn = crate::store::open(&ctx.cfg.paths.database)?;
            let s = crate::habitat::relances::run(&mut conn, &ctx.cfg, &ctx.clock)?;
            println!(
                "relances : {} commande(s) signalée(s) en relance ({} prestataire(s)), {} e-mail(s) mis en file ; \
                 publié : {} document(s), {} liste(s)",
                s.flagged, s.providers, s.mails, s.published.documents, s.published.listings
            );
            Ok(Outcome::Ok)
        }
        "bordereaux" => {
            let _lock = SpoolLock::acquire(&ctx.cfg)?;
            let mut conn = crate::store::open(&ctx.cfg.paths.database)?;
            let s = crate::bordereaux::run(&mut conn, &ctx.cfg, &ctx.clock)?;
            println!("bordereaux : {s}");
            Ok(Outcome::Ok)
        }
        "invoice-threshold" | "invoice-weekly" | "purge" => {
            anyhow::bail!("job {} is not available in this version", a.job)
        }
        other => anyhow::bail!(
            "unknown job {other:?} (invoice-threshold, invoice-weekly, relances, bordereaux, purge, mail)"
        ),
    }
}
