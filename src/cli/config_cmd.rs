//! `config check`: the configuration was already loaded and validated by the
//! time this runs (a bad file exits 2 before); print the effective values,
//! then check that the state they name exists and is usable. Like every
//! read-only command it never creates a spool or a database (spec §8): on a
//! missing database it exits 2 and says where it looked.
//!
//! Secrets are masked (spec §8): the password of `[mail] smtp_url` shows as
//! `***`. That output is itself a valid configuration, but a relay password
//! written as the mask is never sent as a password: delivery refuses it, and
//! this command warns about it.

use anyhow::Context;

use super::{Ctx, Outcome};
use crate::mail::smtp_url::MASK;

pub fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    println!("# effective configuration (every key, defaults included; secrets shown as {MASK})");
    print!("{}", ctx.cfg.to_toml());
    if let Some(url) = ctx.cfg.mail.smtp_url.as_ref().filter(|u| u.has_masked_password()) {
        eprintln!(
            "ppas-gateway: warning: [mail] smtp_url {url}: the password is the mask {MASK:?}, not a \
             password; e-mail delivery refuses it until the real one is written"
        );
    }
    crate::store::open_existing(&ctx.cfg.paths.database)
        .context("the configuration is valid, but the state it names cannot be used")?;
    Ok(Outcome::Ok)
}
