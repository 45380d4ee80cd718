//! `process --once`, `validate` and `run JOB`: the pipeline driven once
//! from the command line (cron-style use, dry runs, jobs by hand).

use anyhow::Context as _;

use super::{Ctx, Outcome, ProcessArgs, RunArgs, ValidateArgs};
use crate::jobs::{runs, Cause, Job, RunKey};
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

/// `run JOB`: one scheduled job now, by hand, through the path the
/// daemon's scheduler takes ([`crate::jobs::runs::execute`]): under the
/// spool lock (refused while a daemon holds the spool: there the jobs are
/// its scheduler's), recorded as a manual run (`manual:<instant>`) with its
/// history entry; then what it changed in the outbound folders is
/// published. Prints `JOB : summary`; exit 0, or 2 when the job failed
/// (its error is printed, recorded and listed by `status`).
pub fn run_job(ctx: &Ctx, a: &RunArgs) -> anyhow::Result<Outcome> {
    let Some(job) = Job::parse(&a.job) else {
        anyhow::bail!("unknown job {:?}: the jobs are {}", a.job, Job::names());
    };
    let _lock = SpoolLock::acquire(&ctx.cfg).with_context(|| {
        format!("run {job}: a running daemon runs the jobs on its schedule; stop it to run one by hand")
    })?;
    let mut conn = crate::store::open(&ctx.cfg.paths.database)?;
    let now = ctx.clock.now();
    let rec = runs::execute(
        &mut conn,
        &ctx.cfg,
        &ctx.clock,
        job,
        RunKey::Manual(now),
        Cause::Manual,
        None,
    )?
    .context("a run by hand is always recorded")?;
    let summary = rec.summary.as_deref().unwrap_or_default();
    if !rec.ok() {
        anyhow::bail!("{job} : échec — {summary}");
    }
    println!("{job} : {summary}");
    crate::outbound::publish_due(&mut conn, &ctx.cfg, ctx.clock.now())
        .with_context(|| format!("{job}: done, but the outbound files it changed were not all written"))?;
    Ok(Outcome::Ok)
}
