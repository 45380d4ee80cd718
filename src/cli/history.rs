//! `history --from D --to D [filters] [--order asc|desc] [--format table|json|csv]`:
//! the exchange history of a period (spec §7) on stdout.
//!
//! Dates are `YYYY-MM-DD` or `JJ/MM/AAAA`, days in Europe/Paris, both ends
//! included; a period that ends before it starts, or a date that does not
//! exist, is a usage error (exit 2). The database is opened read-only: a
//! query never writes. `json` is JSON Lines (one object per entry per line);
//! `csv` is for a French spreadsheet (BOM, `;`). Output stops quietly when
//! the reader goes away (`| head`).

use std::io::{BufWriter, ErrorKind, Write};

use anyhow::{Context, Result};

use super::{Ctx, HistoryArgs, Outcome};
use crate::history::format::{self, CsvOut, Table};
use crate::history::query::{self, parse_day, Filter};

pub fn run(ctx: &Ctx, a: &HistoryArgs) -> Result<Outcome> {
    let filter = filter(a)?;
    let conn = query::open_read_only(&ctx.cfg.paths.database)?;
    let caisses = &ctx.cfg.billing.caisses;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());

    let written: Result<()> = (|| {
        match a.format.as_str() {
            "json" => {
                query::for_each(&conn, &filter, |r| Ok(writeln!(out, "{}", format::json(&r, caisses))?))?;
            }
            "csv" => {
                let mut w = CsvOut::new(&mut out)?;
                query::for_each(&conn, &filter, |r| Ok(w.row(&r, caisses)?))?;
                w.finish()?;
            }
            _ => {
                // Widths first, lines second, from one snapshot: a row the
                // daemon records in between cannot break the alignment.
                let snapshot = conn.unchecked_transaction().context("cannot read the history")?;
                let mut table = Table::new();
                let n = query::for_each(&snapshot, &filter, |r| {
                    table.measure(&r);
                    Ok(())
                })?;
                if n == 0 {
                    writeln!(
                        out,
                        "Aucun échange enregistré du {} au {}.",
                        filter.from.format("%d/%m/%Y"),
                        filter.to.format("%d/%m/%Y")
                    )?;
                } else {
                    table.header(&mut out)?;
                    query::for_each(&snapshot, &filter, |r| Ok(table.row(&mut out, &r)?))?;
                }
            }
        }
        out.flush()?;
        Ok(())
    })();
    match written {
        Err(e) if is_broken_pipe(&e) => Ok(Outcome::Ok),
        Err(e) => Err(e),
        Ok(()) => Ok(Outcome::Ok),
    }
}

/// The period and filters of the command line.
fn filter(a: &HistoryArgs) -> Result<Filter> {
    let mut f = Filter::period(parse_day("--from", &a.from)?, parse_day("--to", &a.to)?)?;
    let given = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    f.provider = given(&a.provider);
    f.convention = given(&a.convention);
    f.interface = given(&a.interface);
    f.comment = given(&a.comment);
    f.order = a.order.parse()?;
    Ok(f)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
