//! `oncowatch replay`: records from files or stdin through the engine, with the summary and rejects files of
//! the replay contract. stdout carries only replay's output (alerts); everything else goes to stderr.

use super::input::{expand, for_each_record, total_bytes, InputError};
use crate::core::alerts::policy::TIER_NAMES;
use crate::core::engine::{Engine, States};
use crate::core::reason::{Outcome, Tally};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// What `replay` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub inputs: Vec<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub rejects: Option<PathBuf>,
    /// One row of features per patient at the end of input.
    pub features_out: Option<PathBuf>,
    /// Alerts (RiskAssessment NDJSON) go here; `None` = stdout.
    pub alerts: Option<PathBuf>,
    /// Arrival time of every record (backfill suppression).
    pub arrival: Option<crate::core::identity::EventTime>,
    pub progress: bool,
}

/// The result of a replay: the tally and the final states.
pub struct ReplayOutcome {
    pub tally: Tally,
    pub states: States,
    /// Alerts by tier (1 = watch … 3 = urgent), withdrawals excluded.
    pub alerts: [u64; 3],
    pub withdrawn: u64,
    pub suppressed: u64,
    pub scored: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot write {path}: {message}")]
    Output { path: String, message: String },
}

fn out_err(p: &std::path::Path) -> impl Fn(std::io::Error) -> ReplayError + '_ {
    move |e| ReplayError::Output { path: p.display().to_string(), message: e.to_string() }
}

/// Replays the inputs through `engine`.
pub fn replay(engine: &Engine, opts: &ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let inputs = expand(&opts.inputs)?;
    let mut rejects = match &opts.rejects {
        Some(p) => Some((std::io::BufWriter::new(std::fs::File::create(p).map_err(out_err(p))?), p.clone())),
        None => None,
    };
    let alerts_path = opts.alerts.clone().unwrap_or_else(|| PathBuf::from("stdout"));
    let mut alerts_out: Box<dyn Write> = match &opts.alerts {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(out_err(p))?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = super::progress::bar(opts.progress, total_bytes(&inputs), "replay");
    let mut outcome = ReplayOutcome {
        tally: Tally::default(),
        states: States::new(),
        alerts: [0; 3],
        withdrawn: 0,
        suppressed: 0,
        scored: engine.model.is_some(),
    };
    let mut write_error: Option<ReplayError> = None;
    for_each_record(
        &inputs,
        |rec| {
            outcome.tally.records += 1;
            let report = engine.process(&mut outcome.states, &rec.bytes, None, opts.arrival);
            for r in &report.resources {
                outcome.tally.count(&r.outcome);
                if let (Outcome::Rejected(reason, message), Some((w, p))) = (&r.outcome, rejects.as_mut()) {
                    let line = json!({
                        "source": rec.source, "line": rec.line, "entry": r.entry, "resource_type": r.resource_type,
                        "reason": reason.code(), "message": message,
                    });
                    if let Err(e) = writeln!(w, "{line}") {
                        write_error.get_or_insert(out_err(p)(e));
                    }
                }
            }
            outcome.suppressed += report.suppressed;
            for a in &report.alerts {
                if a.withdrawn {
                    outcome.withdrawn += 1;
                } else if let Some(n) = outcome.alerts.get_mut(usize::from(a.tier).wrapping_sub(1)) {
                    *n += 1;
                }
                if let Err(e) = writeln!(alerts_out, "{}", a.json) {
                    write_error.get_or_insert(out_err(&alerts_path)(e));
                }
            }
        },
        |n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    alerts_out.flush().map_err(out_err(&alerts_path))?;
    if let Some((mut w, p)) = rejects {
        w.flush().map_err(out_err(&p))?;
    }
    if let Some(p) = &opts.features_out {
        write_features(engine, &outcome.states, p)?;
    }
    if let Some(p) = &opts.summary_json {
        let text = serde_json::to_string_pretty(&summary(&outcome)).unwrap_or_default();
        std::fs::write(p, text + "\n").map_err(out_err(p))?;
    }
    Ok(outcome)
}

/// Patient counts of the final states: (patients, not eligible at their latest event, confirmed metastasis).
pub fn patient_counts(states: &States) -> (u64, u64, u64) {
    let mut not_eligible = 0;
    let mut metastasis = 0;
    for s in states.values() {
        let t = s.latest.unwrap_or(crate::core::identity::EventTime(i64::MAX));
        if !s.eligible(t) {
            not_eligible += 1;
        }
        if s.metastasis(t).is_some() {
            metastasis += 1;
        }
    }
    (states.len() as u64, not_eligible, metastasis)
}

/// The summary JSON of the replay contract.
pub fn summary(o: &ReplayOutcome) -> serde_json::Value {
    let mut m = o.tally.to_json();
    let (patients, not_eligible, metastasis) = patient_counts(&o.states);
    let tiers: serde_json::Map<String, serde_json::Value> =
        TIER_NAMES.iter().zip(o.alerts).map(|(name, n)| (name.to_string(), n.into())).collect();
    m.insert("alerts".into(), tiers.into());
    m.insert("withdrawn".into(), o.withdrawn.into());
    m.insert("suppressed".into(), o.suppressed.into());
    m.insert("patients".into(), patients.into());
    m.insert("not_eligible".into(), not_eligible.into());
    m.insert("confirmed_metastasis".into(), metastasis.into());
    serde_json::Value::Object(m)
}

/// `--features-out`: one row per patient (in pseudonym order) as of its latest event.
fn write_features(engine: &Engine, states: &States, p: &std::path::Path) -> Result<(), ReplayError> {
    use crate::core::features::compute;
    use crate::drivers::features_csv::{cells, header};
    let mut rows: Vec<(String, String)> = Vec::with_capacity(states.len());
    for s in states.values() {
        let hash = engine.pseudonyms.pseudonym(&s.key).to_string();
        let Some(as_of) = s.latest else {
            rows.push((hash.clone(), format!("{hash},,,0,0{}", ",".repeat(crate::core::features::N_FEATURES))));
            continue;
        };
        let fv = compute(s, &engine.vocab, as_of);
        let site = s.primary(as_of).map(|(site, _)| site.as_str()).unwrap_or("");
        let meta = u8::from(s.metastasis(as_of).is_some());
        let eligible = u8::from(s.eligible(as_of));
        rows.push((hash.clone(), format!("{hash},{},{site},{meta},{eligible}{}", as_of.to_rfc3339(), cells(&fv))));
    }
    rows.sort();
    let mut text = header(&["patient_hash", "as_of", "primary_site", "metastasis_confirmed", "eligible"]);
    text.push('\n');
    for (_, r) in rows {
        text.push_str(&r);
        text.push('\n');
    }
    std::fs::write(p, text).map_err(out_err(p))
}
