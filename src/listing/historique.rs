//! The `historique` listing of one provider (spec §2; seed, chapter 5
//! "Historique des prestataires"): `outbound/<provider>/historique.csv`, the
//! provider's own exchanges of the last 6 months. Layout:
//! `docs/formats/listings.md`.
//!
//! In: the exchange history and the day of rendering (Europe/Paris). Out:
//! exactly what `ppas-gateway history --from <today − 6 months> --to <today>
//! --provider <provider> --format csv` prints (the same columns and rows,
//! newest first): a French spreadsheet's CSV (BOM, `;`, CRLF, Paris time,
//! formulas guarded), written by [`crate::history::format::CsvOut`].
//!
//! Only the entries recorded with this provider are listed: never another
//! provider's, never an entry without a provider (jobs, imports, e-mails
//! addressed to nobody in particular). The history holds no NIR (its
//! comments name files, references and counts), so neither does this file.
//!
//! CSV only: the specification names `historique.csv` alone, and the
//! history is a log for a person to read, not data a provider's software
//! takes in (that is what the reports, bordereaux and the other listings
//! are in XML for).
//!
//! Unlike the other listings, the content depends on the day of rendering
//! (entries leave the window): the listing is marked owed whenever an entry
//! of the provider is recorded ([`crate::history::record`]) and by the
//! daily purge ([`crate::retention::purge`]).

use std::io::Write;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use rusqlite::Connection;

use crate::history::format::{Caisses, CsvOut};
use crate::history::query::{self, Filter, Order};

/// Months of history a provider finds in its listing (spec §2).
pub const MONTHS: u32 = 6;

/// The history query the listing of `provider` runs on `today`: the days
/// from `today − 6 months` to `today` (Paris), that provider only, newest
/// first.
pub fn filter(provider: &str, today: NaiveDate) -> Result<Filter> {
    let mut f = Filter::period(crate::retention::keep_from(today, MONTHS), today)?;
    f.provider = Some(provider.to_string());
    f.order = Order::Desc;
    Ok(f)
}

/// Writes the listing of `provider` on `today` to `out`; returns the number
/// of entries listed. Streams: a busy provider's six months are not held
/// in memory.
pub fn write(
    conn: &Connection,
    provider: &str,
    today: NaiveDate,
    caisses: &Caisses,
    out: &mut impl Write,
) -> Result<usize> {
    let f = filter(provider, today)?;
    let mut w = CsvOut::new(out)?;
    let n = query::for_each(conn, &f, |r| Ok(w.row(&r, caisses)?))
        .with_context(|| format!("listing the exchanges of {provider}"))?;
    w.finish()?;
    Ok(n)
}

/// The listing's bytes (tests).
pub fn render(conn: &Connection, provider: &str, today: NaiveDate, caisses: &Caisses) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write(conn, provider, today, caisses, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
