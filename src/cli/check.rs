//! `check [--json] FILE...`: stateless conformance check (being written).
use super::{Ctx, FilesArgs, Outcome};
pub fn run(_ctx: &Ctx, _a: &FilesArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("check is not available yet")
}
