//! The stateful controls of spec §3 (F05, F06, F09 by reference, F12, L04,
//! L05, L07, L08, L11) as a [`LineRules`] hook over a read view of the state.
//!
//! In: the header and each line after the stateless controls, and an open
//! transaction. Out: anomalies; and, for every line that ends with none,
//! its consumption of the plan and its period recorded — in memory for the
//! lines that follow in the same file, and in `accepted_lines` when the
//! caller records (processing), not when it only validates.
//!
//! Reads are batched where a file has many lines: the provider's plans for
//! the caisse (with what earlier files consumed) are loaded once per file;
//! the overlap check is one indexed query per line.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use crate::billing::check::LineRules;
use crate::billing::{Anomaly, Code, Header, Line, Verdict};
use crate::config::Config;

/// A plan as the controls see it: amounts in ten-thousandths.
#[derive(Debug, Clone)]
struct PlanState {
    id: i64,
    start: NaiveDate,
    end: NaiveDate,
    total_e4: i64,
    consumed_e4: i64,
}

#[derive(Debug, Default)]
struct Beneficiary {
    plans: Vec<PlanState>,
    periods: Vec<(NaiveDate, NaiveDate)>,
}

fn make_key(buf: &mut String, nir: &str, prestation: &str) {
    buf.clear();
    buf.push_str(nir);
    buf.push('\u{1f}');
    buf.push_str(prestation);
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
    benef: HashMap<String, Beneficiary>,
    /// Reused lookup key (no allocation per line).
    key: String,
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

fn day(s: &str) -> Option<NaiveDate> {
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
            benef: HashMap::new(),
            key: String::new(),
            recorded: None,
            id_cram: String::new(),
            error: None,
        }
    }

    fn load(&mut self, id_cram: &str) -> Result<()> {
        let mut st = self.conn.prepare_cached("SELECT id_site FROM conventions WHERE provider = ?1 AND validated = 1")?;
        self.sites = st
            .query_map([&self.provider], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        // Plans of the provider's sites with this caisse, and what accepted
        // lines already consumed of each.
        let mut st = self.conn.prepare_cached(
            "SELECT p.id, p.nir_per, p.rf_prstpap, p.dt_debut, p.dt_fin, p.mt_total, p.mt_consomme,
                    COALESCE((SELECT SUM(a.amount_e4) FROM accepted_lines a WHERE a.plan_id = p.id), 0)
             FROM plans p
             WHERE p.id_cram = ?1
               AND p.id_site IN (SELECT id_site FROM conventions WHERE provider = ?2 AND id_cram = ?1 AND validated = 1)
             ORDER BY p.dt_debut, p.id",
        )?;
        let mut rows = st.query(params![id_cram, self.provider])?;
        self.benef.clear();
        let mut key = String::new();
        while let Some(r) = rows.next()? {
            let text = |i: usize| r.get_ref(i).map(|v| v.as_str().unwrap_or_default());
            let (Some(start), Some(end)) = (day(text(3)?), day(text(4)?)) else { continue };
            make_key(&mut key, text(1)?, text(2)?);
            let plan = PlanState {
                id: r.get(0)?,
                start,
                end,
                total_e4: r.get::<_, i64>(5)? * 100,
                consumed_e4: r.get::<_, i64>(6)? * 100 + r.get::<_, i64>(7)?,
            };
            match self.benef.get_mut(key.as_str()) {
                Some(b) => b.plans.push(plan),
                None => {
                    self.benef.insert(key.clone(), Beneficiary { plans: vec![plan], periods: Vec::new() });
                }
            }
        }
        self.id_cram = id_cram.to_string();
        Ok(())
    }

    fn header_checks(&mut self, h: &Header, out: &mut Vec<Anomaly>) -> Result<()> {
        let site = self
            .conn
            .prepare_cached("SELECT provider, validated FROM conventions WHERE id_site = ?1 ORDER BY validated DESC LIMIT 1")?
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
                format!("le site « {} » n'appartient pas au prestataire {} qui a déposé le fichier", h.id_site, self.provider),
            )),
            Some(_) => {}
        }
        if !self.cfg.billing.caisses.contains_key(&h.id_cram) {
            out.push(Anomaly::file(Code::F06, None, Some("id-cram"), format!("caisse « {} » inconnue", h.id_cram)));
        } else {
            let n: i64 = self
                .conn
                .prepare_cached("SELECT COUNT(*) FROM conventions WHERE provider = ?1 AND id_cram = ?2 AND validated = 1")?
                .query_row(params![self.provider, h.id_cram], |r| r.get(0))?;
            if n == 0 {
                out.push(Anomaly::file(
                    Code::F06,
                    None,
                    Some("id-cram"),
                    format!("le prestataire {} n'a pas de convention validée avec la caisse {}", self.provider, h.id_cram),
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
                format!("le bordereau « {} » a déjà été transmis (fichier {name}) : il ne peut pas être renvoyé", h.rf_borfact),
            ));
        }
        self.load(&h.id_cram)
    }

    fn line_checks(&mut self, l: &Line, out: &mut Vec<Anomaly>) -> Result<()> {
        let at = l.xml_line;
        if !l.id_prest.is_empty() && !self.sites.contains(&l.id_prest) {
            out.push(Anomaly::line(
                Code::L11,
                l.index,
                at,
                "id-prest",
                format!("le site intervenant « {} » n'est pas un site du prestataire", l.id_prest),
            ));
        }
        let mut key = std::mem::take(&mut self.key);
        make_key(&mut key, &l.nir_per, &l.rf_prstpap);
        let r = self.checks_for(l, &key, out);
        self.key = key;
        r
    }

    fn checks_for(&mut self, l: &Line, key: &str, out: &mut Vec<Anomaly>) -> Result<()> {
        let at = l.xml_line;
        let period = l.dtd_interv.zip(l.dtf_interv).filter(|(d, f)| d <= f);
        let amount = match (l.nb_quant, l.mt_tu) {
            (Some(q), Some(tu)) => e4(q * tu),
            _ => None,
        };
        let mut plan_idx = None;
        let benef = self.benef.get(key);
        match benef.filter(|b| !b.plans.is_empty()) {
            None => out.push(Anomaly::line(
                Code::L04,
                l.index,
                at,
                "nir-per",
                format!("aucun plan d'aide {} pour ce bénéficiaire chez ce prestataire et cette caisse", l.rf_prstpap),
            )),
            Some(b) => {
                let plans = &b.plans;
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
            let earlier_in_file = benef.is_some_and(|b| b.periods.iter().any(|&(pd, pf)| pd <= f && d <= pf));
            let earlier_file = earlier_in_file
                || self
                    .conn
                    .prepare_cached(
                        "SELECT 1 FROM accepted_lines WHERE nir_per = ?1 AND rf_prstpap = ?2 AND dtd <= ?3 AND dtf >= ?4 LIMIT 1",
                    )?
                    .exists(params![l.nir_per, l.rf_prstpap, f.to_string(), d.to_string()])?;
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
                b.plans[i].consumed_e4 += amount;
                let plan_id = b.plans[i].id;
                b.periods.push((d, f));
                if let Some(file_id) = self.record_as {
                    self.record(file_id, plan_id, l, d, f, amount)?;
                    let row = self.conn.last_insert_rowid();
                    self.recorded = Some(self.recorded.map_or((row, row), |(first, _)| (first, row)));
                }
            }
        }
        Ok(())
    }

    fn record(&self, file_id: i64, plan_id: i64, l: &Line, d: NaiveDate, f: NaiveDate, amount: i64) -> Result<()> {
        let h = |v: Option<Decimal>| v.and_then(crate::store::reference::to_hundredths).unwrap_or(0);
        self.conn
            .prepare_cached(
                "INSERT INTO accepted_lines (file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per, rf_prstpap,
                    id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                file_id,
                l.index,
                plan_id,
                self.id_cram,
                l.nir_per,
                l.nom_per,
                l.pn_per,
                l.rf_prstpap,
                l.id_prest,
                d.to_string(),
                f.to_string(),
                h(l.nb_quant),
                h(l.mt_tu),
                h(l.mt_total),
                l.bo_regul,
                amount
            ])?;
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

/// F09 by content: the same bytes were already received (an earlier file).
pub fn duplicate_of(conn: &Connection, sha256: &str, before_id: Option<i64>) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT name FROM received_files WHERE sha256 = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id LIMIT 1")?
        .query_row(params![sha256, before_id], |r| r.get(0))
        .optional()?)
}

/// Makes a verdict rejected by a file anomaly found outside the reader.
pub fn reject_with(v: &mut crate::billing::FileVerdict, a: Anomaly) {
    v.anomalies.insert(0, a);
    v.verdict = Verdict::Rejected;
    v.accepted_lines = 0;
    v.accepted_hours = Decimal::ZERO;
}
