//! `mail retry [--all | ID]`: queues again the e-mails that failed after
//! their last attempt (spec §8), once the cause (a relay, an address) is
//! fixed. They go out at the next pass of the mail worker: the running
//! service's, or `ppas-gateway run mail`.
//!
//! Works while the daemon runs (one short write transaction) and never
//! creates a database: a missing one exits 2 saying where it looked.

use anyhow::Result;

use super::{Ctx, MailCommand, Outcome};
use crate::mail::queue::{self, Retry};

pub fn run(ctx: &Ctx, cmd: MailCommand) -> Result<Outcome> {
    match cmd {
        MailCommand::Retry { all, id } => {
            let which = match id {
                Some(id) if !all => Retry::One(id),
                None if all => Retry::All,
                _ => anyhow::bail!("mail retry takes either --all or one ID"),
            };
            let mut conn = crate::store::open_existing(&ctx.cfg.paths.database)?;
            let n = queue::retry(&mut conn, &ctx.cfg, ctx.clock.now(), which)?;
            match n {
                0 => println!("no failed e-mail to queue again"),
                1 => println!("1 failed e-mail queued again; it goes out at the next mail pass"),
                n => println!("{n} failed e-mails queued again; they go out at the next mail pass"),
            }
            Ok(Outcome::Ok)
        }
    }
}
