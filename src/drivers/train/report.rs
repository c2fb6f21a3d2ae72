//! The training report: `report.json` (test metrics, calibration table, per-tier patient-level alert
//! figures), `report.md` for a clinical reader, and PNG plots (ROC, calibration, lead time).

use super::metrics::{auc, auprc, brier, calibration_table, ece, roc_points};
use super::{out_err, TrainError};
use crate::core::alerts::policy::TIER_NAMES;
use crate::core::identity::{EventTime, PatientKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One test patient's timeline outcome under the alert policy.
pub struct PatientOutcome {
    pub _key: PatientKey,
    pub first_eligible: EventTime,
    /// End of follow-up (metastasis, or the latest event).
    pub end: EventTime,
    pub metastasis: Option<EventTime>,
    /// (tier, event time) of each alert issued (withdrawals excluded).
    pub alerts: Vec<(u8, EventTime)>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Per tier, counted per patient: sensitivity (patients with metastasis who had an alert at this tier or
/// higher within the horizon before it), PPV (patients alerted at this tier or higher whose metastasis
/// followed within the horizon of their first such alert), median lead time of the true alerts.
fn tiers(patients: &[PatientOutcome], horizon: u32) -> Value {
    let h = f64::from(horizon);
    let mut out = serde_json::Map::new();
    for (i, name) in TIER_NAMES.iter().enumerate() {
        let tier = (i + 1) as u8;
        let mut with_met = 0usize;
        let mut detected = 0usize;
        let mut alerted = 0usize;
        let mut true_alerted = 0usize;
        let mut leads = Vec::new();
        for p in patients {
            let first = p.alerts.iter().filter(|(t, _)| *t >= tier).map(|(_, at)| *at).min();
            if let Some(m) = p.metastasis {
                with_met += 1;
                let true_first = p.alerts.iter().filter(|(t, at)| *t >= tier && *at < m && m.days_since(*at) <= h).map(|(_, at)| *at).min();
                if let Some(a) = true_first {
                    detected += 1;
                    leads.push(m.days_since(a));
                }
            }
            if let Some(f) = first {
                alerted += 1;
                if p.metastasis.is_some_and(|m| m > f && m.days_since(f) <= h) {
                    true_alerted += 1;
                }
            }
        }
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                Value::Null
            } else {
                json!(a as f64 / b as f64)
            }
        };
        out.insert(
            name.to_string(),
            json!({
                "sensitivity": ratio(detected, with_met), "ppv": ratio(true_alerted, alerted),
                "patients_with_metastasis": with_met, "patients_detected": detected,
                "patients_alerted": alerted, "patients_alerted_true": true_alerted,
                "median_lead_days": median(leads),
            }),
        );
    }
    Value::Object(out)
}

/// Builds report.json's content.
pub fn build(
    test: &[(f64, f64)],
    raw: &[(f64, f64)],
    patients: &[PatientOutcome],
    horizon: u32,
    seconds: &BTreeMap<&'static str, f64>,
    model_version: &str,
) -> Value {
    let years: f64 = patients.iter().map(|p| p.end.days_since(p.first_eligible).max(0.0) / 365.25).sum();
    let n_alerts: usize = patients.iter().map(|p| p.alerts.len()).sum();
    let tiers = tiers(patients, horizon);
    let watch_lead = tiers["watch"]["median_lead_days"].clone();
    json!({
        "model_version": model_version,
        "horizon_days": horizon,
        "data": "synthetic cohort from `oncowatch generate` (not clinical data)",
        "test": {
            "rows": test.len(),
            "positives": test.iter().filter(|(_, y)| *y > 0.5).count(),
            "auc": auc(test), "auc_raw_score": auc(raw), "auprc": auprc(test), "brier": brier(test), "ece": ece(test),
        },
        "calibration": calibration_table(test),
        "tiers": tiers,
        "median_lead_days": watch_lead,
        "alerts_per_100_patient_years": if years > 0.0 { json!(100.0 * n_alerts as f64 / years) } else { Value::Null },
        "test_patients": patients.len(),
        "test_patient_years": years,
        "seconds": seconds,
    })
}

/// Writes report.json, report.md and the plots into `dir`.
pub fn write(dir: &Path, report: &Value, test: &[(f64, f64)], patients: &[PatientOutcome]) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| out_err(dir, e))?;
    let p = dir.join("report.json");
    let text = serde_json::to_string_pretty(report).map_err(|e| out_err(&p, e))?;
    std::fs::write(&p, text + "\n").map_err(|e| out_err(&p, e))?;
    let p = dir.join("report.md");
    std::fs::write(&p, markdown(report)).map_err(|e| out_err(&p, e))?;
    let leads: Vec<f64> = patients
        .iter()
        .filter_map(|p| {
            let m = p.metastasis?;
            let first = p.alerts.iter().filter(|(_, at)| *at < m).map(|(_, at)| *at).min()?;
            Some(m.days_since(first))
        })
        .collect();
    if let Err(e) = super::super::plots::all(dir, &roc_points(test), &calibration_table(test), &leads) {
        tracing::warn!("plots not drawn: {e}");
    }
    Ok(())
}

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "n/a".into(),
    }
}

fn markdown(r: &Value) -> String {
    let t = &r["test"];
    let mut s = String::new();
    s.push_str("# oncowatch model report\n\n");
    s.push_str("**Trained and evaluated on synthetic data** from `oncowatch generate`: these figures describe the model on that\n");
    s.push_str("simulated cohort, not its performance on real patients. oncowatch is decision support, not a diagnosis.\n\n");
    s.push_str(&format!(
        "Model `{}`; outcome: confirmed metastasis within {} days of the score's event time.\n\n",
        r["model_version"].as_str().unwrap_or(""),
        r["horizon_days"]
    ));
    s.push_str("## Discrimination and calibration (test split, held-out patients)\n\n| measure | value | meaning |\n|---|---|---|\n");
    s.push_str(&format!(
        "| AUC | {} | chance that a snapshot followed by metastasis scores higher than one that is not (0.5 = chance) |\n",
        f(&t["auc"], 3)
    ));
    s.push_str(&format!(
        "| AUPRC | {} | average precision; the base rate is {} of {} snapshots |\n",
        f(&t["auprc"], 3),
        t["positives"],
        t["rows"]
    ));
    s.push_str(&format!("| Brier score | {} | mean squared error of the probability (lower is better) |\n", f(&t["brier"], 4)));
    s.push_str(&format!("| ECE | {} | average gap between predicted and observed risk over 10 bins |\n\n", f(&t["ece"], 4)));
    s.push_str("| predicted risk | snapshots | mean predicted | observed |\n|---|---|---|---|\n");
    for b in r["calibration"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {:.1}–{:.1} | {} | {} | {} |\n",
            b["lower"].as_f64().unwrap_or(0.0),
            b["upper"].as_f64().unwrap_or(0.0),
            b["count"],
            f(&b["mean_predicted"], 3),
            f(&b["observed_rate"], 3)
        ));
    }
    s.push_str("\n## Alerts, counted per patient (test patients, full timelines, default policy)\n\n");
    s.push_str("| tier | sensitivity | PPV | patients alerted | median lead (days) |\n|---|---|---|---|---|\n");
    for name in TIER_NAMES {
        let x = &r["tiers"][name];
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            f(&x["sensitivity"], 2),
            f(&x["ppv"], 2),
            x["patients_alerted"],
            f(&x["median_lead_days"], 0)
        ));
    }
    s.push_str(&format!(
        "\nAlerts per 100 patient-years: {} over {} test patients ({} patient-years).\n\n",
        f(&r["alerts_per_100_patient_years"], 1),
        r["test_patients"],
        f(&r["test_patient_years"], 0)
    ));
    s.push_str("Sensitivity: share of patients who developed metastasis that had an alert at this tier or higher in the horizon\n");
    s.push_str("before it. PPV: share of alerted patients whose metastasis followed within the horizon of their first alert.\n");
    s.push_str(
        "Lead time: days from the first true alert to the recorded metastasis.\n\nPlots: `roc.png`, `calibration.png`, `lead_time.png`.\n",
    );
    s
}
