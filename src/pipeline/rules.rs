//! The stateful controls of spec §3 (F05, F06, F09 by reference, F12, L04,
//! L05, L07, L08, L11) as a [`LineRules`] hook over a read view of the state.
//!
//! In: the header and each line after the stateless controls, and an open
//! transaction. Out: anomalies; and, for every line that ends with none,
//! its consumption of the plan and its period recorded — in memory for the
//! lines that follow in the same file, and in the state when the caller
//! records (processing), not when it only validates.
//!
//! Recording writes two tables: `accepted_lines`, in file order (appended:
//! it has no secondary index), and `accepted_periods`, the lines' periods
//! keyed by beneficiary and prestation, which the overlap check and the
//! preload read. A file's NIRs come in an order unrelated to that key (it
//! is sorted by month and name), so the periods are gathered in large
//! chunks and each chunk is inserted sorted in the key's order: the pages
//! of `accepted_periods` are then visited in order, once per chunk, instead
//! of one random page per line.
//!
//! Reads are batched where a file has many lines: the provider's plans for
//! the caisse (with what earlier files consumed, and the latest end of the
//! periods already accepted for each beneficiary and prestation) are loaded
//! once per file, in NIR order (index only). The overlap check (L08)
//! queries `accepted_periods` only for a line whose period starts no later
//! than that end, or whose beneficiary has no plan here; a line of a
//! beneficiary billed for the first time, or for a period after every
//! accepted one, needs no query. Lines of this file whose periods are not
//! yet inserted are covered by the in-memory check. The statements used per
//! line are prepared once per file.

use std::collections::HashSet;

use anyhow::Result;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Statement};
use rust_decimal::Decimal;

use crate::billing::check::LineRules;
use crate::billing::{Anomaly, Code, Header, Line};
use crate::config::Config;
use crate::store::dates;
use crate::store::raw::{Prepared, Row, Value};

/// A plan as the controls see it: amounts in ten-thousandths.
#[derive(Debug, Clone)]
struct PlanState {
    id: i64,
    start: NaiveDate,
    end: NaiveDate,
    total_e4: i64,
    consumed_e4: i64,
}

/// `nir␟prestation`, the key of a beneficiary's plans. Held in place up to
/// 23 bytes, which every valid NIR (13) with any prestation code (at most
/// 6) fits: a lookup allocates nothing and compares the key where the map
/// holds it, instead of following a pointer to a random place of the heap
/// for each line. Longer keys (invalid lines only) are on the heap.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Short(u8, [u8; 23]),
    Long(Box<[u8]>),
}

impl Key {
    fn new(nir: &str, prestation: &str) -> Key {
        let (nir, prestation) = (nir.as_bytes(), prestation.as_bytes());
        let n = nir.len() + 1 + prestation.len();
        let mut b = [0u8; 23];
        if n > b.len() {
            return Key::Long([nir, b"\x1f", prestation].concat().into_boxed_slice());
        }
        b[..nir.len()].copy_from_slice(nir);
        b[nir.len()] = 0x1f;
        b[nir.len() + 1..n].copy_from_slice(prestation);
        Key::Short(n as u8, b)
    }
}

#[derive(Debug)]
struct Beneficiary {
    /// Its plans: `StateRules::plans[plans.0..plans.1]`, in start order
    /// (then id): the first covering a period wins.
    plans: (u32, u32),
    /// Periods accepted earlier in this file: the first, then the others.
    first_period: Option<(NaiveDate, NaiveDate)>,
    more_periods: Vec<(NaiveDate, NaiveDate)>,
    /// Latest end of the periods accepted before this file (any provider,
    /// any caisse), as stored (yyyymmdd); `None` when there is none. A
    /// period starting after it overlaps none of them.
    latest_end: Option<i64>,
}

impl Beneficiary {
    /// Whether a period accepted earlier in this file meets `d..=f`.
    fn accepted_meets(&self, d: NaiveDate, f: NaiveDate) -> bool {
        let meets = |&(pd, pf): &(NaiveDate, NaiveDate)| pd <= f && d <= pf;
        self.first_period.iter().chain(&self.more_periods).any(meets)
    }

    fn accept(&mut self, d: NaiveDate, f: NaiveDate) {
        if self.first_period.is_none() {
            self.first_period = Some((d, f));
        } else {
            self.more_periods.push((d, f));
        }
    }
}

/// Accepted lines (or periods) inserted by one statement.
const BATCH: usize = 256;
/// Parameters of a line in the INSERT; ?1 (file_id) and ?2 (id_cram) are
/// shared by every line of a statement.
const PER_LINE: usize = 14;
/// Accepted lines whose periods are sorted and inserted together: each
/// page of `accepted_periods` is visited at most once per chunk, so the
/// larger the better; bounds the memory they take (some 85 bytes a line,
/// 11 MB). A file of up to this many lines is sorted in one chunk.
const PERIOD_CHUNK: usize = 131_072;
/// Parameters of a period in its INSERT.
const PERIOD_COLUMNS: usize = 7;

/// L08: an accepted line of the beneficiary and prestation whose period
/// meets `?4..=?3` (one key range of accepted_periods).
const OVERLAP_SQL: &str =
    "SELECT 1 FROM accepted_periods WHERE nir_per = ?1 AND rf_prstpap = ?2 AND dtd <= ?3 AND dtf >= ?4 LIMIT 1";

const PERIOD_INSERT: &str =
    "INSERT INTO accepted_periods (nir_per, rf_prstpap, dtd, dtf, line_id, plan_id, amount_e4) VALUES ";

/// The INSERT of `rows` periods: `(?1, …, ?7), (?8, …)`.
fn period_sql(rows: usize) -> String {
    let mut sql = String::from(PERIOD_INSERT);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        let cols: Vec<String> = (1..=PERIOD_COLUMNS)
            .map(|j| format!("?{}", i * PERIOD_COLUMNS + j))
            .collect();
        sql.push('(');
        sql.push_str(&cols.join(","));
        sql.push(')');
    }
    sql
}

const INSERT_COLUMNS: &str = "INSERT INTO accepted_lines (file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per,
    rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4) VALUES ";

/// The INSERT of `rows` accepted lines: `(?1, ?b+1, ?b+2, ?2, ?b+3, …)`.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(INSERT_COLUMNS);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        let b = 2 + i * PER_LINE;
        let p = |j: usize| format!("?{}", b + j);
        let mut cols = vec!["?1".to_string(), p(1), p(2), "?2".to_string()];
        cols.extend((3..=PER_LINE).map(p));
        sql.push('(');
        sql.push_str(&cols.join(","));
        sql.push(')');
    }
    sql
}

/// An accepted line waiting for its INSERT; its text is in `Pending::text`.
struct PendingLine {
    line_no: u32,
    plan_id: i64,
    /// End offsets in `Pending::text` of nir, nom, prénom, prestation, site, bo_regul.
    ends: [usize; 6],
    /// The period as stored (yyyymmdd).
    dtd: i64,
    dtf: i64,
    nb_quant: i64,
    mt_tu: i64,
    mt_total: i64,
    amount_e4: i64,
}

/// Accepted lines not yet inserted, in file order.
#[derive(Default)]
struct Pending {
    lines: Vec<PendingLine>,
    text: String,
}

impl Pending {
    /// The text of line `i`: nir, nom, prénom, prestation, site, bo_regul.
    fn texts(&self, i: usize) -> [&str; 6] {
        let mut from = if i == 0 { 0 } else { self.lines[i - 1].ends[5] };
        let mut text = [""; 6];
        for (t, &end) in text.iter_mut().zip(&self.lines[i].ends) {
            *t = &self.text[from..end];
            from = end;
        }
        text
    }
}

/// An accepted line's row of `accepted_periods`, waiting for its INSERT;
/// its NIR and prestation are `Periods::text[at..at + nir + prst]`.
struct PeriodRow {
    /// The NIR's first 16 bytes (all of a valid one), big-endian,
    /// zero-padded: ordered as the NIRs are (equal for NIRs that differ
    /// only later), so that the sort reads the text only to compare the
    /// lines of one beneficiary.
    prefix: u128,
    at: u32,
    nir: u16,
    prst: u16,
    dtd: i64,
    dtf: i64,
    line_id: i64,
    plan_id: i64,
    amount_e4: i64,
}

/// Periods of recorded lines not yet in `accepted_periods`.
#[derive(Default)]
struct Periods {
    rows: Vec<PeriodRow>,
    text: String,
}

impl Periods {
    /// Queues the period of line `l`, recorded as `line_id`.
    fn push(&mut self, nir: &str, prst: &str, l: &PendingLine, line_id: i64) -> Result<()> {
        let mut prefix = [0u8; 16];
        let n = nir.len().min(16);
        prefix[..n].copy_from_slice(&nir.as_bytes()[..n]);
        self.rows.push(PeriodRow {
            prefix: u128::from_be_bytes(prefix),
            at: u32::try_from(self.text.len())?,
            nir: u16::try_from(nir.len())?,
            prst: u16::try_from(prst.len())?,
            dtd: l.dtd,
            dtf: l.dtf,
            line_id,
            plan_id: l.plan_id,
            amount_e4: l.amount_e4,
        });
        self.text.push_str(nir);
        self.text.push_str(prst);
        Ok(())
    }

    /// NIR and prestation of `r`.
    fn key(&self, r: &PeriodRow) -> (&str, &str) {
        let at = r.at as usize;
        let mid = at + usize::from(r.nir);
        (&self.text[at..mid], &self.text[mid..mid + usize::from(r.prst)])
    }

    /// Sorts the rows in the order of the table's key (text compared as
    /// bytes, as SQLite's BINARY collation does).
    fn sort(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| (self.key(a), a.dtd, a.dtf, a.line_id).cmp(&(self.key(b), b.dtd, b.dtf, b.line_id)))
        });
        self.rows = rows;
    }
}

/// The plans of the provider's sites with the caisse (?1 id_cram, ?2
/// provider), of prestation ?3 when `of_prestation`, of NIR ?4 when
/// `of_nir`; with what accepted lines already consumed of each, and the
/// latest end of the periods already accepted for the beneficiary and
/// prestation (both read from the beneficiary and prestation's key range in
/// accepted_periods, where a plan's lines are). Only the end: the earliest
/// start would cost one more subquery a plan and spare a query only for a
/// line billed before every accepted period, which is rare. Index only
/// (plans_preload), in NIR order within a site and prestation.
fn plans_sql(of_prestation: bool, of_nir: bool) -> String {
    let mut sql = String::from(
        "SELECT p.id, p.nir_per, p.rf_prstpap, p.dt_debut, p.dt_fin, p.mt_total, p.mt_consomme,
                COALESCE((SELECT SUM(a.amount_e4) FROM accepted_periods a
                          WHERE a.nir_per = p.nir_per AND a.rf_prstpap = p.rf_prstpap AND a.plan_id = p.id), 0),
                (SELECT MAX(a.dtf) FROM accepted_periods a WHERE a.nir_per = p.nir_per AND a.rf_prstpap = p.rf_prstpap)
         FROM plans p
         WHERE p.id_cram = ?1
           AND p.id_site IN (SELECT id_site FROM conventions WHERE provider = ?2 AND id_cram = ?1 AND validated = 1)",
    );
    if of_prestation {
        sql.push_str(" AND p.rf_prstpap = ?3");
    }
    if of_nir {
        sql.push_str(" AND p.nir_per = ?4");
    }
    sql
}

/// A row of [`plans_sql`]: the key, the latest accepted end, the plan
/// (`None` for a plan whose dates are not dates).
fn plan_row(r: &Row<'_>) -> Result<Option<(Key, Option<i64>, PlanState)>> {
    // Text as stored (UTF-8 written by this program).
    let text = |i| r.bytes(i).map(|b| std::str::from_utf8(b).unwrap_or_default());
    let (Some(start), Some(end)) = (day(text(3)?), day(text(4)?)) else {
        return Ok(None);
    };
    let plan = PlanState {
        id: r.int(0)?,
        start,
        end,
        total_e4: r.int(5)? * 100,
        consumed_e4: r.int(6)? * 100 + r.int(7)?,
    };
    // NULL: no period accepted before.
    let latest_end = if r.is_null(8)? { None } else { Some(r.int(8)?) };
    Ok(Some((Key::new(text(1)?, text(2)?), latest_end, plan)))
}

/// The stateful rules for one file.
pub struct StateRules<'c> {
    conn: &'c Connection,
    cfg: &'c Config,
    provider: String,
    /// The received file's id: accepted lines are recorded under it.
    record_as: Option<i64>,
    /// Every site of the sending provider (any caisse).
    sites: HashSet<String>,
    /// `nir␟prestation` → the beneficiary's plans with the provider and the
    /// header's caisse, and the periods accepted earlier in this file.
    /// (foldhash: seeded per process, several times faster than SipHash
    /// on these short keys.)
    benef: foldhash::HashMap<Key, Beneficiary>,
    /// The plans of every beneficiary, each one's together.
    plans: Vec<PlanState>,
    /// The prestation whose plans were all preloaded (the header's, when
    /// known; `None`: every prestation's). Keys of other prestations are
    /// read at their first line, and kept in `benef`, or in `absent` when
    /// they have no plan.
    preloaded: Option<String>,
    absent: HashSet<Key>,
    plans_of_key: Option<Prepared<'c>>,
    /// Statements run per line, prepared once per file: the overlap query
    /// (at its first use), the INSERT of `BATCH` accepted lines and that of
    /// one (in `load`).
    overlap: Option<Statement<'c>>,
    insert_batch: Option<Prepared<'c>>,
    insert_one: Option<Prepared<'c>>,
    /// The INSERTs of `BATCH` periods and of one (in `load`).
    period_batch: Option<Prepared<'c>>,
    period_one: Option<Prepared<'c>>,
    /// Accepted lines waiting for their INSERT ([`StateRules::finish`]
    /// inserts the last ones).
    pending: Pending,
    /// Periods of inserted lines waiting for theirs (a chunk at a time).
    periods: Periods,
    /// Lines in a chunk of periods ([`PERIOD_CHUNK`]; fewer in tests).
    period_chunk: usize,
    /// Rowids of the first and last accepted line recorded for this file.
    pub recorded: Option<(i64, i64)>,
    id_cram: String,
    /// An error met while reading the state: the file cannot be decided.
    pub error: Option<anyhow::Error>,
}

fn e4(d: Decimal) -> Option<i64> {
    let v = (d * Decimal::from(10_000)).round();
    i64::try_from(v).ok()
}

/// A plan's date, stored as `YYYY-MM-DD`, read without the format machinery.
fn day(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter()
            .try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

impl<'c> StateRules<'c> {
    pub fn new(conn: &'c Connection, cfg: &'c Config, provider: &str, record_as: Option<i64>) -> StateRules<'c> {
        StateRules {
            conn,
            cfg,
            provider: provider.to_string(),
            record_as,
            sites: HashSet::new(),
            benef: foldhash::HashMap::default(),
            plans: Vec::new(),
            preloaded: None,
            absent: HashSet::new(),
            plans_of_key: None,
            overlap: None,
            insert_batch: None,
            insert_one: None,
            period_batch: None,
            period_one: None,
            pending: Pending::default(),
            periods: Periods::default(),
            period_chunk: PERIOD_CHUNK,
            recorded: None,
            id_cram: String::new(),
            error: None,
        }
    }

    /// Reads the provider's sites, then the plans of the beneficiaries
    /// (those of the header's prestation when it is a known one: another
    /// prestation's plans matter only to lines already refused as L01,
    /// which look theirs up one beneficiary at a time).
    fn load(&mut self, id_cram: &str, prestation: &str) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id_site FROM conventions WHERE provider = ?1 AND validated = 1")?;
        self.sites = st
            .query_map([&self.provider], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        self.id_cram = id_cram.to_string();
        self.preloaded = self
            .cfg
            .billing
            .prestations
            .contains_key(prestation)
            .then(|| prestation.to_string());
        let mut rows: Vec<(Key, Option<i64>, PlanState)> = Vec::new();
        let mut st = Prepared::prepare(self.conn, &plans_sql(self.preloaded.is_some(), false))?;
        let mut values = vec![Value::Text(id_cram), Value::Text(&self.provider)];
        values.extend(self.preloaded.as_deref().map(Value::Text));
        st.for_each_row(&values, |r| {
            rows.extend(plan_row(r)?);
            Ok(())
        })?;
        // A beneficiary's plans together, in start order (then id): the
        // first plan covering a period wins.
        rows.sort_unstable_by(|a, b| (&a.0, a.2.start, a.2.id).cmp(&(&b.0, b.2.start, b.2.id)));
        self.plans.clear();
        self.plans.reserve_exact(rows.len());
        self.benef.clear();
        self.absent.clear();
        let keys = rows.chunk_by(|a, b| a.0 == b.0).count();
        self.benef.reserve(keys);
        self.add_plans(rows)?;
        if self.record_as.is_some() {
            self.insert_batch = Some(Prepared::prepare(self.conn, &insert_sql(BATCH))?);
            self.insert_one = Some(Prepared::prepare(self.conn, &insert_sql(1))?);
            self.period_batch = Some(Prepared::prepare(self.conn, &period_sql(BATCH))?);
            self.period_one = Some(Prepared::prepare(self.conn, &period_sql(1))?);
        }
        Ok(())
    }

    /// Adds beneficiaries and their plans, from plan rows sorted by key,
    /// then start, then id.
    fn add_plans(&mut self, rows: Vec<(Key, Option<i64>, PlanState)>) -> Result<()> {
        let mut rows = rows.into_iter().peekable();
        while let Some((key, latest_end, plan)) = rows.next() {
            let first = u32::try_from(self.plans.len())?;
            self.plans.push(plan);
            while let Some((_, _, plan)) = rows.next_if(|r| r.0 == key) {
                self.plans.push(plan);
            }
            let b = Beneficiary {
                plans: (first, u32::try_from(self.plans.len())?),
                first_period: None,
                more_periods: Vec::new(),
                latest_end,
            };
            self.benef.insert(key, b);
        }
        Ok(())
    }

    /// Reads the plans of line `l`'s beneficiary and prestation when the
    /// preload left them out (another prestation than the header's).
    fn load_key(&mut self, l: &Line, key: &Key) -> Result<()> {
        if self.preloaded.as_deref().is_none_or(|p| p == l.rf_prstpap)
            || self.benef.contains_key(key)
            || self.absent.contains(key)
        {
            return Ok(());
        }
        let st = match &mut self.plans_of_key {
            Some(st) => st,
            None => self
                .plans_of_key
                .insert(Prepared::prepare(self.conn, &plans_sql(true, true))?),
        };
        let mut rows = Vec::new();
        let values = [
            Value::Text(&self.id_cram),
            Value::Text(&self.provider),
            Value::Text(&l.rf_prstpap),
            Value::Text(&l.nir_per),
        ];
        st.for_each_row(&values, |r| {
            rows.extend(plan_row(r)?);
            Ok(())
        })?;
        if rows.is_empty() {
            self.absent.insert(key.clone());
        }
        rows.sort_unstable_by(|a, b| (&a.0, a.2.start, a.2.id).cmp(&(&b.0, b.2.start, b.2.id)));
        self.add_plans(rows)
    }

    fn header_checks(&mut self, h: &Header, out: &mut Vec<Anomaly>) -> Result<()> {
        let site = self
            .conn
            .prepare_cached(
                "SELECT provider, validated FROM conventions WHERE id_site = ?1 ORDER BY validated DESC LIMIT 1",
            )?
            .query_row([&h.id_site], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
            .optional()?;
        match &site {
            None | Some((_, false)) => out.push(Anomaly::file(
                Code::F05,
                None,
                Some("id-site"),
                format!("le site « {} » n'est pas un site enregistré et validé", h.id_site),
            )),
            Some((owner, true)) if *owner != self.provider => out.push(Anomaly::file(
                Code::F12,
                None,
                Some("id-site"),
                format!(
                    "le site « {} » n'appartient pas au prestataire {} qui a déposé le fichier",
                    h.id_site, self.provider
                ),
            )),
            Some(_) => {}
        }
        if !self.cfg.billing.caisses.contains_key(&h.id_cram) {
            out.push(Anomaly::file(
                Code::F06,
                None,
                Some("id-cram"),
                format!("caisse « {} » inconnue", h.id_cram),
            ));
        } else {
            let n: i64 = self
                .conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM conventions WHERE provider = ?1 AND id_cram = ?2 AND validated = 1",
                )?
                .query_row(params![self.provider, h.id_cram], |r| r.get(0))?;
            if n == 0 {
                out.push(Anomaly::file(
                    Code::F06,
                    None,
                    Some("id-cram"),
                    format!(
                        "le prestataire {} n'a pas de convention validée avec la caisse {}",
                        self.provider, h.id_cram
                    ),
                ));
            }
        }
        let transmitted: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT name FROM received_files WHERE rf_borfact = ?1 AND accepted_lines > 0 AND id IS NOT ?2 LIMIT 1",
            )?
            .query_row(params![h.rf_borfact, self.record_as], |r| r.get(0))
            .optional()?;
        if let Some(name) = transmitted {
            out.push(Anomaly::file(
                Code::F09,
                None,
                Some("rf-borfact"),
                format!(
                    "le bordereau « {} » a déjà été transmis (fichier {name}) : il ne peut pas être renvoyé",
                    h.rf_borfact
                ),
            ));
        }
        self.load(&h.id_cram, &h.rf_prstpap)
    }

    fn line_checks(&mut self, l: &Line, out: &mut Vec<Anomaly>) -> Result<()> {
        let at = l.xml_line;
        if !l.id_prest.is_empty() && !self.sites.contains(&l.id_prest) {
            out.push(Anomaly::line(
                Code::L11,
                l.index,
                at,
                "id-prest",
                format!(
                    "le site intervenant « {} » n'est pas un site du prestataire",
                    l.id_prest
                ),
            ));
        }
        let key = Key::new(&l.nir_per, &l.rf_prstpap);
        self.checks_for(l, &key, out)
    }

    fn checks_for(&mut self, l: &Line, key: &Key, out: &mut Vec<Anomaly>) -> Result<()> {
        self.load_key(l, key)?;
        let at = l.xml_line;
        let period = l.dtd_interv.zip(l.dtf_interv).filter(|(d, f)| d <= f);
        let amount = match (l.nb_quant, l.mt_tu) {
            (Some(q), Some(tu)) => e4(q * tu),
            _ => None,
        };
        let mut plan_idx = None;
        let benef = self.benef.get(key);
        match benef.filter(|b| b.plans.0 < b.plans.1) {
            None => out.push(Anomaly::line(
                Code::L04,
                l.index,
                at,
                "nir-per",
                format!(
                    "aucun plan d'aide {} pour ce bénéficiaire chez ce prestataire et cette caisse",
                    l.rf_prstpap
                ),
            )),
            Some(b) => {
                let plans = &self.plans[b.plans.0 as usize..b.plans.1 as usize];
                if let Some((d, f)) = period {
                    plan_idx = plans.iter().position(|p| p.start <= d && f <= p.end);
                    if plan_idx.is_none() {
                        let spans: Vec<String> = plans.iter().map(|p| format!("{} au {}", p.start, p.end)).collect();
                        out.push(Anomaly::line(
                            Code::L05,
                            l.index,
                            at,
                            "dtd-interv",
                            format!("période du {d} au {f} hors du plan d'aide ({})", spans.join(", ")),
                        ));
                    }
                }
                if let (Some(i), Some(amount)) = (plan_idx, amount) {
                    let p = &plans[i];
                    let left = p.total_e4 - p.consumed_e4;
                    if amount > left {
                        out.push(Anomaly::line(
                            Code::L07,
                            l.index,
                            at,
                            "nb-quant",
                            format!(
                                "montant facturé {} supérieur au reste du plan d'aide {}",
                                Decimal::new(amount, 4).normalize(),
                                Decimal::new(left.max(0), 4).normalize()
                            ),
                        ));
                    }
                }
            }
        }
        if let Some((d, f)) = period {
            let earlier_in_file = benef.is_some_and(|b| b.accepted_meets(d, f));
            // Earlier files: only worth a query when the period starts no
            // later than the latest end accepted before (or that is unknown).
            let (di, fi) = (dates::to_int(d), dates::to_int(f));
            let may_overlap = benef.is_none_or(|b| b.latest_end.is_some_and(|hi| di <= hi));
            let earlier_file = earlier_in_file || may_overlap && self.overlaps_earlier(l, di, fi)?;
            if earlier_file {
                out.push(Anomaly::line(
                    Code::L08,
                    l.index,
                    at,
                    "dtd-interv",
                    format!("une ligne pour ce bénéficiaire et cette prestation couvrant tout ou partie du {d} au {f} a déjà été acceptée"),
                ));
            }
        }
        // Accepted: it consumes its plan and blocks its period.
        // `out` holds this line's anomalies only, stateless ones included.
        if out.is_empty() {
            if let (Some(i), Some(amount), Some((d, f))) = (plan_idx, amount, period) {
                let b = self.benef.get_mut(key).expect("plan found above");
                let plan = &mut self.plans[b.plans.0 as usize + i];
                plan.consumed_e4 += amount;
                let plan_id = plan.id;
                b.accept(d, f);
                if self.record_as.is_some() {
                    self.record(plan_id, l, d, f, amount)?;
                }
            }
        }
        Ok(())
    }

    /// L08 against the lines accepted before this file.
    fn overlaps_earlier(&mut self, l: &Line, d: i64, f: i64) -> Result<bool> {
        let st = match &mut self.overlap {
            Some(st) => st,
            None => self.overlap.insert(self.conn.prepare(OVERLAP_SQL)?),
        };
        Ok(st.exists(params![l.nir_per, l.rf_prstpap, f, d])?)
    }

    /// Queues an accepted line for its INSERT; inserts a full batch.
    fn record(&mut self, plan_id: i64, l: &Line, d: NaiveDate, f: NaiveDate, amount: i64) -> Result<()> {
        let h = |v: Option<Decimal>| v.and_then(crate::store::reference::to_hundredths).unwrap_or(0);
        let p = &mut self.pending;
        let mut ends = [0; 6];
        for (end, t) in ends.iter_mut().zip([
            &l.nir_per,
            &l.nom_per,
            &l.pn_per,
            &l.rf_prstpap,
            &l.id_prest,
            &l.bo_regul,
        ]) {
            p.text.push_str(t);
            *end = p.text.len();
        }
        p.lines.push(PendingLine {
            line_no: l.index,
            plan_id,
            ends,
            dtd: dates::to_int(d),
            dtf: dates::to_int(f),
            nb_quant: h(l.nb_quant),
            mt_tu: h(l.mt_tu),
            mt_total: h(l.mt_total),
            amount_e4: amount,
        });
        if p.lines.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts the queued lines (in file order: their rowids follow it) and
    /// queues their periods; inserts the periods once a chunk is full.
    fn flush(&mut self) -> Result<()> {
        let Some(file_id) = self.record_as else {
            return Ok(());
        };
        let p = &self.pending;
        let mut values: Vec<Value<'_>> = Vec::with_capacity(2 + BATCH * PER_LINE);
        let n = p.lines.len();
        let mut start = 0;
        while start < n {
            let (st, rows) = if n - start >= BATCH {
                (
                    self.insert_batch.as_mut().expect("prepared by load when recording"),
                    BATCH,
                )
            } else {
                (self.insert_one.as_mut().expect("prepared by load when recording"), 1)
            };
            values.clear();
            values.extend([Value::Int(file_id), Value::Text(&self.id_cram)]);
            for (i, pl) in p.lines[start..start + rows].iter().enumerate() {
                let text = p.texts(start + i);
                // In the order of the parameters ?b+1 … ?b+14 (insert_sql).
                values.extend([
                    Value::Int(i64::from(pl.line_no)),
                    Value::Int(pl.plan_id),
                    Value::Text(text[0]),
                    Value::Text(text[1]),
                    Value::Text(text[2]),
                    Value::Text(text[3]),
                    Value::Text(text[4]),
                    Value::Int(pl.dtd),
                    Value::Int(pl.dtf),
                    Value::Int(pl.nb_quant),
                    Value::Int(pl.mt_tu),
                    Value::Int(pl.mt_total),
                    Value::Text(text[5]),
                    Value::Int(pl.amount_e4),
                ]);
            }
            st.execute(&values)?;
            // One writer, rowids allocated one after the other: the
            // statement's rows are the `rows` rowids ending at the last one.
            let last = self.conn.last_insert_rowid();
            let first = last - rows as i64 + 1;
            self.recorded = Some(self.recorded.map_or((first, last), |(f, _)| (f, last)));
            for (i, pl) in p.lines[start..start + rows].iter().enumerate() {
                let text = p.texts(start + i);
                self.periods.push(text[0], text[3], pl, first + i as i64)?;
            }
            start += rows;
        }
        self.pending.lines.clear();
        self.pending.text.clear();
        if self.periods.rows.len() >= self.period_chunk {
            self.flush_periods()?;
        }
        Ok(())
    }

    /// Inserts the queued periods in the order of `accepted_periods`' key.
    fn flush_periods(&mut self) -> Result<()> {
        self.periods.sort();
        let ps = &self.periods;
        let mut values: Vec<Value<'_>> = Vec::with_capacity(BATCH * PERIOD_COLUMNS);
        let mut rest = &ps.rows[..];
        while !rest.is_empty() {
            let (st, rows) = if rest.len() >= BATCH {
                (
                    self.period_batch.as_mut().expect("prepared by load when recording"),
                    BATCH,
                )
            } else {
                (self.period_one.as_mut().expect("prepared by load when recording"), 1)
            };
            values.clear();
            for r in &rest[..rows] {
                let (nir, prst) = ps.key(r);
                values.extend([
                    Value::Text(nir),
                    Value::Text(prst),
                    Value::Int(r.dtd),
                    Value::Int(r.dtf),
                    Value::Int(r.line_id),
                    Value::Int(r.plan_id),
                    Value::Int(r.amount_e4),
                ]);
            }
            st.execute(&values)?;
            rest = &rest[rows..];
        }
        self.periods.rows.clear();
        self.periods.text.clear();
        Ok(())
    }

    /// Inserts the accepted lines and periods still queued: to call once
    /// the file is read.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush()?;
        if self.record_as.is_some() {
            self.flush_periods()?;
        }
        Ok(())
    }
}

impl LineRules for StateRules<'_> {
    fn header(&mut self, header: &Header, out: &mut Vec<Anomaly>) {
        if let Err(e) = self.header_checks(header, out) {
            self.error.get_or_insert(e);
        }
    }

    fn line(&mut self, _header: &Header, line: &Line, out: &mut Vec<Anomaly>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.line_checks(line, out) {
            self.error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_dates_read_and_insert_shape() {
        for s in ["2026-10-01", "0001-01-01", "9999-12-31", "2024-02-29"] {
            let d = day(s).unwrap();
            assert_eq!(d, NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        }
        assert_eq!(day("2026-02-30"), None);
        assert_eq!(day("2026-1-5"), NaiveDate::parse_from_str("2026-1-5", "%Y-%m-%d").ok());
        assert_eq!(
            insert_sql(2),
            format!("{INSERT_COLUMNS}(?1,?3,?4,?2,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16),(?1,?17,?18,?2,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30)")
        );
        assert_eq!(
            period_sql(2),
            format!("{PERIOD_INSERT}(?1,?2,?3,?4,?5,?6,?7),(?8,?9,?10,?11,?12,?13,?14)")
        );
    }

    /// A NIR for beneficiary `i`, in an order unrelated to `i`.
    fn nir(i: u64) -> String {
        format!(
            "{}{:012}",
            1 + i % 2,
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_000_000_000
        )
    }

    /// Month `m` from January 2026 (13: January 2027).
    fn month(m: u32) -> (NaiveDate, NaiveDate) {
        let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Months::new(m - 1);
        (d, d + chrono::Months::new(1) - chrono::Days::new(1))
    }

    /// Lines in a chunk of periods in these tests.
    const CHUNK: usize = 2000;

    /// Runs the rules over `lines` (nir, month, hours) recorded as file `file`;
    /// returns the codes found, by line index.
    fn run(conn: &Connection, cfg: &Config, file: i64, lines: &[(String, u32, i64)]) -> Vec<(u32, Code)> {
        run_messages(conn, cfg, file, lines)
            .into_iter()
            .map(|(i, c, _)| (i, c))
            .collect()
    }

    /// As [`run`], with each anomaly's message.
    fn run_messages(
        conn: &Connection,
        cfg: &Config,
        file: i64,
        lines: &[(String, u32, i64)],
    ) -> Vec<(u32, Code, String)> {
        let header = Header {
            rf_borfact: format!("f{file}"),
            log_fact: String::new(),
            id_cram: "03".into(),
            id_site: "S1".into(),
            rf_prstpap: "PPP100".into(),
        };
        let mut rules = StateRules::new(conn, cfg, "prov", Some(file));
        rules.period_chunk = CHUNK;
        let mut out = Vec::new();
        rules.header(&header, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut codes = Vec::new();
        for (i, (nir, m, hours)) in lines.iter().enumerate() {
            let (d, f) = month(*m);
            let line = Line {
                index: i as u32 + 1,
                xml_line: 0,
                nir_per: nir.clone(),
                nom_per: "Nom".into(),
                pn_per: "Prénom".into(),
                rf_prstpap: "PPP100".into(),
                id_prest: "S1".into(),
                dtd_interv: Some(d),
                dtf_interv: Some(f),
                nb_quant: Some(Decimal::from(*hours)),
                mt_tu: Some(Decimal::ONE),
                mt_total: Some(Decimal::ZERO),
                bo_regul: "F".into(),
            };
            out.clear();
            rules.line(&header, &line, &mut out);
            codes.extend(out.iter().map(|a| (line.index, a.code, a.message.clone())));
        }
        rules.finish().unwrap();
        codes
    }

    #[test]
    fn periods_recorded_in_chunks_serve_the_next_lines_and_files() {
        let conn = crate::store::open_in_memory().unwrap();
        let cfg = Config::default();
        let people = 3000u64;
        conn.execute_batch(
            "INSERT INTO providers VALUES ('prov', 'P', '1', 'p@example.org', '01 02 03 04 05', 'saad', 't');
             INSERT INTO conventions VALUES ('prov', '03', 'C1', 'S1', 1, 't');
             INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state)
                 VALUES (1, 'prov', 'a.xml', 'depot', 'a', 1, 't', 'w/a', 'received'),
                        (2, 'prov', 'b.xml', 'depot', 'b', 1, 't', 'w/b', 'received');",
        )
        .unwrap();
        {
            let mut st = conn
                .prepare(
                    "INSERT INTO plans (id_cram, id_site, nir_per, nom_per, pn_per, rf_prstpap, dt_debut, dt_fin,
                         mt_total, mt_consomme, updated_at)
                     VALUES ('03', 'S1', ?1, 'N', 'P', 'PPP100', '2026-01-01', '2026-12-31', 10000, 0, 't')",
                )
                .unwrap();
            for i in (0..people).rev() {
                st.execute([nir(i)]).unwrap();
            }
        }
        // File 1: months 1 to 7 by month, then beneficiaries in index
        // order: more lines than a chunk, NIRs scattered. The last line
        // repeats the first one's period (L08 within the file, across a
        // chunk already inserted).
        let mut lines: Vec<(String, u32, i64)> = (1..=7)
            .flat_map(|m| (0..people).map(move |i| (nir(i), m, 10)))
            .collect();
        assert!(lines.len() > 5 * CHUNK);
        lines.push((nir(0), 1, 1));
        let n = lines.len() as u32;
        let codes = run(&conn, &cfg, 1, &lines);
        assert_eq!(codes, [(n, Code::L08)], "{:?}", &codes[..codes.len().min(5)]);
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM accepted_lines"), i64::from(n) - 1);
        assert_eq!(count("SELECT COUNT(*) FROM accepted_periods"), i64::from(n) - 1);
        // Each period is its line's, and the lines are in file order.
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM accepted_periods p JOIN accepted_lines a ON a.id = p.line_id
                 WHERE a.nir_per = p.nir_per AND a.rf_prstpap = p.rf_prstpap AND a.dtd = p.dtd AND a.dtf = p.dtf
                   AND a.plan_id IS p.plan_id AND a.amount_e4 = p.amount_e4 AND a.line_no = a.id - (SELECT MIN(id) FROM accepted_lines) + 1"
            ),
            i64::from(n) - 1
        );
        // File 2: month 7 again for beneficiary 1 (L08 with file 1); month
        // 8 for beneficiaries 2 and 3: 30 hours left of 100 (L07 above);
        // month 6 for beneficiary 4 (L08).
        let codes = run(
            &conn,
            &cfg,
            2,
            &[(nir(1), 7, 5), (nir(2), 8, 31), (nir(3), 8, 30), (nir(4), 6, 1)],
        );
        assert_eq!(codes, [(1, Code::L08), (2, Code::L07), (4, Code::L08)]);
        assert_eq!(
            count("SELECT COUNT(*) FROM accepted_periods WHERE line_id > (SELECT MAX(id) - 1 FROM accepted_lines)"),
            1
        );
    }

    #[test]
    fn the_first_plan_covering_a_period_by_start_then_id_is_consumed() {
        let conn = crate::store::open_in_memory().unwrap();
        let cfg = Config::default();
        // Plans of one beneficiary on two sites of the provider, listed in
        // neither start nor id order.
        conn.execute_batch(
            "INSERT INTO providers VALUES ('prov', 'P', '1', 'p@example.org', '01 02 03 04 05', 'saad', 't');
             INSERT INTO conventions VALUES ('prov', '03', 'C1', 'S1', 1, 't'), ('prov', '03', 'C2', 'S2', 1, 't');
             INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state)
                 VALUES (1, 'prov', 'a.xml', 'depot', 'a', 1, 't', 'w/a', 'received');
             INSERT INTO plans (id, id_cram, id_site, nir_per, nom_per, pn_per, rf_prstpap, dt_debut, dt_fin,
                     mt_total, mt_consomme, updated_at)
                 VALUES (7, '03', 'S1', '1850575123456', 'N', 'P', 'PPP100', '2026-07-01', '2026-12-31', 1000, 0, 't'),
                        (9, '03', 'S2', '1850575123456', 'N', 'P', 'PPP100', '2026-03-01', '2026-09-30', 10000, 0, 't'),
                        (8, '03', 'S1', '1850575123456', 'N', 'P', 'PPP100', '2026-01-01', '2026-06-30', 1000, 0, 't'),
                        (6, '03', 'S1', '1850575123456', 'N', 'P', 'PPP119', '2026-01-01', '2026-12-31', 1000, 0, 't');",
        )
        .unwrap();
        let nir = "1850575123456".to_string();
        let codes = run_messages(
            &conn,
            &cfg,
            1,
            &[
                (nir.clone(), 3, 10), // plan 8 (starts first), 0 left
                (nir.clone(), 4, 5),  // plan 8 still: L07
                (nir.clone(), 8, 5),  // plan 9 (starts before plan 7)
                (nir.clone(), 13, 1), // none: L05, the plans in start order
            ],
        );
        let spans = "2026-01-01 au 2026-06-30, 2026-03-01 au 2026-09-30, 2026-07-01 au 2026-12-31";
        assert_eq!(codes.len(), 2, "{codes:?}");
        assert_eq!((codes[0].0, codes[0].1), (2, Code::L07));
        assert_eq!((codes[1].0, codes[1].1), (4, Code::L05));
        assert!(codes[1].2.contains(spans), "{}", codes[1].2);
        let plans: Vec<i64> = conn
            .prepare("SELECT plan_id FROM accepted_lines ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(plans, [8, 9]);
    }

    #[test]
    fn lines_of_another_prestation_than_the_header_find_their_plans() {
        let conn = crate::store::open_in_memory().unwrap();
        let cfg = Config::default();
        conn.execute_batch(
            "INSERT INTO providers VALUES ('prov', 'P', '1', 'p@example.org', '01 02 03 04 05', 'saad', 't');
             INSERT INTO conventions VALUES ('prov', '03', 'C1', 'S1', 1, 't');
             INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state)
                 VALUES (1, 'prov', 'a.xml', 'depot', 'a', 1, 't', 'w/a', 'received'),
                        (2, 'prov', 'b.xml', 'depot', 'b', 1, 't', 'w/b', 'received');
             INSERT INTO plans (id_cram, id_site, nir_per, nom_per, pn_per, rf_prstpap, dt_debut, dt_fin,
                     mt_total, mt_consomme, updated_at)
                 VALUES ('03', 'S1', '1000000000001', 'N', 'P', 'PPP100', '2026-01-01', '2026-12-31', 10000, 0, 't'),
                        ('03', 'S1', '1000000000001', 'N', 'P', 'PPP119', '2026-01-01', '2026-12-31', 500, 0, 't'),
                        ('03', 'S1', '1000000000002', 'N', 'P', 'PPP100', '2026-01-01', '2026-12-31', 10000, 0, 't');",
        )
        .unwrap();
        // File 1 (PPP119): beneficiary 1's March.
        let h119 = Header {
            rf_borfact: "f1".into(),
            log_fact: String::new(),
            id_cram: "03".into(),
            id_site: "S1".into(),
            rf_prstpap: "PPP119".into(),
        };
        let line = |i: u32, nir: &str, prst: &str, m: u32, hours: i64| {
            let (d, f) = month(m);
            Line {
                index: i,
                xml_line: 0,
                nir_per: nir.into(),
                nom_per: "Nom".into(),
                pn_per: "Prénom".into(),
                rf_prstpap: prst.into(),
                id_prest: "S1".into(),
                dtd_interv: Some(d),
                dtf_interv: Some(f),
                nb_quant: Some(Decimal::from(hours)),
                mt_tu: Some(Decimal::ONE),
                mt_total: Some(Decimal::ZERO),
                bo_regul: "F".into(),
            }
        };
        let mut rules = StateRules::new(&conn, &cfg, "prov", Some(1));
        let mut out = Vec::new();
        rules.header(&h119, &mut out);
        rules.line(&h119, &line(1, "1000000000001", "PPP119", 3, 2), &mut out);
        assert!(out.is_empty(), "{out:?}");
        rules.finish().unwrap();
        drop(rules);
        // File 2 (PPP100), with PPP119 lines (L01 already, from the
        // stateless controls): beneficiary 1's PPP119 plan is found (5
        // hours, 2 consumed: L07 above 3; March taken: L08), beneficiary
        // 2 has none (L04). None of them is recorded.
        let mut h100 = h119.clone();
        h100.rf_prstpap = "PPP100".into();
        let mut rules = StateRules::new(&conn, &cfg, "prov", Some(2));
        rules.header(&h100, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut codes = Vec::new();
        for l in [
            line(1, "1000000000001", "PPP119", 4, 4),
            line(2, "1000000000001", "PPP119", 3, 1),
            line(3, "1000000000002", "PPP119", 4, 1),
            line(4, "1000000000002", "PPP119", 5, 1),
            line(5, "1000000000001", "PPP119", 5, 3),
            line(6, "1000000000002", "PPP100", 4, 1),
        ] {
            out.clear();
            if l.rf_prstpap != h100.rf_prstpap {
                out.push(Anomaly::line(Code::L01, l.index, 0, "rf-prstpap", "L01"));
            }
            rules.line(&h100, &l, &mut out);
            codes.extend(out.iter().map(|a| (l.index, a.code)));
        }
        rules.finish().unwrap();
        assert_eq!(
            codes,
            [
                (1, Code::L01),
                (1, Code::L07),
                (2, Code::L01),
                (2, Code::L08),
                (3, Code::L01),
                (3, Code::L04),
                (4, Code::L01),
                (4, Code::L04),
                (5, Code::L01)
            ]
        );
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM accepted_lines WHERE file_id = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn keys_long_or_short_are_equal_only_to_themselves() {
        let long = "9".repeat(30);
        assert!(matches!(Key::new("1850575123456", "PPP100"), Key::Short(20, _)));
        assert!(matches!(Key::new(&long, "PPP100"), Key::Long(_)));
        assert_eq!(Key::new(&long, "PPP100"), Key::new(&long, "PPP100"));
        assert_ne!(Key::new(&long, "PPP100"), Key::new(&long, "PPP119"));
        assert_ne!(Key::new("12", "3"), Key::new("1", "23"));
        assert_eq!(Key::new("1850575123456", ""), Key::new("1850575123456", ""));
    }

    #[test]
    fn periods_sort_in_the_order_of_the_table_key() {
        // SQLite orders text keys as bytes (BINARY), then the integers.
        let nirs = [
            "1850575123456",
            "185057512345",
            "18505751",
            "1850575",
            "185057",
            "285012A001002",
            "285012B001002",
            "1850575123456",
            "0",
            "",
            "Ž850575123456",
            "1850575123456789B",
            "1850575123456789A",
            "1850575123456789",
        ];
        let mut periods = Periods::default();
        let mut expected = Vec::new();
        for (i, nir) in nirs.iter().enumerate() {
            for (j, prst) in ["PPP119", "PPP100"].iter().enumerate() {
                let (dtd, dtf) = (20260100 + (i as i64 * 7 + j as i64) % 5, 20260131 - i as i64 % 3);
                let line_id = 100 - (i * 2 + j) as i64;
                let line = PendingLine {
                    line_no: 1,
                    plan_id: 1,
                    ends: [0; 6],
                    dtd,
                    dtf,
                    nb_quant: 0,
                    mt_tu: 0,
                    mt_total: 0,
                    amount_e4: 1,
                };
                periods.push(nir, prst, &line, line_id).unwrap();
                expected.push((nir.as_bytes().to_vec(), prst.as_bytes().to_vec(), dtd, dtf, line_id));
            }
        }
        periods.sort();
        expected.sort();
        let got: Vec<_> = periods
            .rows
            .iter()
            .map(|r| {
                let (nir, prst) = periods.key(r);
                (
                    nir.as_bytes().to_vec(),
                    prst.as_bytes().to_vec(),
                    r.dtd,
                    r.dtf,
                    r.line_id,
                )
            })
            .collect();
        assert_eq!(got, expected);
    }
}
