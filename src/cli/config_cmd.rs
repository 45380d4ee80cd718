//! `config check`: the configuration was already loaded and validated by the
//! time this runs (a bad file exits 2 before); print the effective values.

use super::{Ctx, Outcome};

pub fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    println!("# effective configuration (every key, defaults included)");
    print!("{}", ctx.cfg.to_toml());
    Ok(Outcome::Ok)
}
