//! The `beneficiaires` listing of one provider (see the module header of
//! [`crate::listing`]).

use anyhow::Result;
use rusqlite::Connection;

use super::Rendered;

/// Renders the `beneficiaires` listing of `provider`.
pub fn render(_conn: &Connection, provider: &str) -> Result<Rendered> {
    anyhow::bail!("the beneficiaires listing of {provider} cannot be rendered by this version")
}
