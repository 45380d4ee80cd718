//! `serve`: runs the daemon until SIGTERM (see [`crate::daemon`]).

use super::{Ctx, Outcome};

pub fn run(ctx: Ctx) -> anyhow::Result<Outcome> {
    crate::daemon::serve(ctx.config_path.clone(), ctx.cfg, ctx.clock)?;
    Ok(Outcome::Ok)
}
