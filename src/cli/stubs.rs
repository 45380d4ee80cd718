//! Commands whose capability is not built yet answer with a clear error
//! (exit 2) instead of pretending to succeed.

use super::{Command, Ctx, Outcome};

pub fn run(_ctx: &Ctx, cmd: Command) -> anyhow::Result<Outcome> {
    anyhow::bail!("command {cmd:?} is not available in this version")
}
