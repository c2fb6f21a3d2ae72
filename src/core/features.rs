//! Features: the fixed, named, versioned schema `oncowatch.features` and its computation from a
//! `PatientState` as of a point in event time.
//!
//! Every value is finite or explicitly missing (`None`), never NaN or infinite. A change of any name, order
//! or meaning bumps [`SCHEMA_VERSION`]; a model file records the schema it was trained on and refuses to load
//! against another.

use super::identity::EventTime;
use super::state::{PatientState, Point, PointKind};
use super::vocabulary::{FindingGroup, SeriesId, SeriesKind, Site, StageAxis, Vocabulary};

pub const SCHEMA_NAME: &str = "oncowatch.features";
pub const SCHEMA_VERSION: u32 = 1;

/// Feature names, in schema order.
pub const NAMES: [&str; 53] = [
    "age",
    "female",
    "site_breast",
    "site_colorectal",
    "site_lung",
    "site_prostate",
    "site_melanoma",
    "site_other",
    "stage_group",
    "t_category",
    "n_category",
    "days_since_diagnosis",
    "marker_last_uln",
    "marker_last_nadir",
    "marker_log_slope_30d",
    "marker_above_uln_last3",
    "marker_days_since",
    "alp_uln",
    "alp_change_180d",
    "ldh_uln",
    "ldh_change_180d",
    "bilirubin_uln",
    "bilirubin_change_180d",
    "ast_uln",
    "ast_change_180d",
    "alt_uln",
    "alt_change_180d",
    "calcium_last",
    "calcium_max_90d",
    "albumin_last",
    "haemoglobin_last",
    "haemoglobin_change_180d",
    "platelets_last",
    "weight_change_pct_90d",
    "weight_change_pct_180d",
    "bmi_last",
    "ecog_last",
    "ecog_change",
    "ct_mr_studies_90d",
    "pet_nm_studies_90d",
    "imaging_rate_ratio",
    "imaging_days_since",
    "findings_bone_90d",
    "findings_neuro_90d",
    "findings_hepatic_90d",
    "findings_respiratory_90d",
    "findings_constitutional_90d",
    "pathological_fracture",
    "events_30d",
    "days_since_previous_event",
    "marker_missing",
    "labs_missing",
    "imaging_missing",
];

pub const N_FEATURES: usize = NAMES.len();

/// Plain-words label of each feature, for alert notes and reports.
pub fn label(i: usize) -> &'static str {
    match NAMES.get(i) {
        Some(&"marker_last_uln") => "tumour marker vs upper limit",
        Some(&"marker_last_nadir") => "tumour marker vs its nadir",
        Some(&"marker_log_slope_30d") => "tumour marker trend",
        Some(&"marker_above_uln_last3") => "recent tumour markers above limit",
        Some(&"alp_uln") => "alkaline phosphatase",
        Some(&"ldh_uln") => "LDH",
        Some(&"calcium_max_90d") => "calcium (90-day max)",
        Some(&"weight_change_pct_90d") => "weight change over 90 days",
        Some(&"weight_change_pct_180d") => "weight change over 180 days",
        Some(&"pet_nm_studies_90d") => "PET / bone scan studies",
        Some(&"imaging_rate_ratio") => "imaging frequency",
        Some(&"findings_bone_90d") => "bone symptoms",
        Some(&"ecog_last") => "ECOG performance status",
        Some(n) => n,
        None => "unknown",
    }
}

/// A feature vector: one value per schema name, `None` when missing.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    pub as_of: EventTime,
    pub values: [Option<f64>; N_FEATURES],
}

impl FeatureVector {
    pub fn get(&self, name: &str) -> Option<f64> {
        NAMES.iter().position(|n| *n == name).and_then(|i| self.values[i])
    }
}

const DAY: f64 = 1.0;

struct Builder {
    values: [Option<f64>; N_FEATURES],
}

impl Builder {
    fn set(&mut self, name: &str, v: Option<f64>) {
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            // Guard: a non-finite value is missing, never NaN.
            self.values[i] = v.filter(|x| x.is_finite());
        }
    }
}

/// Computes the feature vector of `state` as of `as_of` (only points at or before it count).
pub fn compute(state: &PatientState, vocab: &Vocabulary, as_of: EventTime) -> FeatureVector {
    let mut b = Builder { values: [None; N_FEATURES] };
    let pts: Vec<&Point> = state.points_until(as_of).collect();
    let days_ago = |t: EventTime| as_of.days_since(t);

    b.set("age", state.age_at(as_of));
    b.set("female", state.demographics.female.map(|f| if f { 1.0 } else { 0.0 }));
    let primary = state.primary(as_of);
    for site in Site::ALL {
        let on = primary.map(|(s, _)| if s == site { 1.0 } else { 0.0 }).unwrap_or(0.0);
        b.set(&format!("site_{}", site.as_str()), Some(on));
    }
    let last_stage = |axis: StageAxis| {
        pts.iter().rev().find_map(|p| match p.kind {
            PointKind::Stage { axis: a, value } if a == axis => Some(f64::from(value)),
            _ => None,
        })
    };
    b.set("stage_group", last_stage(StageAxis::Group));
    b.set("t_category", last_stage(StageAxis::T));
    b.set("n_category", last_stage(StageAxis::N));
    b.set("days_since_diagnosis", primary.map(|(_, t)| days_ago(t)));

    // Site-appropriate tumour marker: among the markers serving the primary site, the one measured last.
    let marker = primary.and_then(|(site, _)| {
        vocab
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == SeriesKind::Marker && s.sites.contains(&site))
            .filter_map(|(i, _)| {
                let id = SeriesId(u16::try_from(i).ok()?);
                let last = series(&pts, id).last().map(|(t, _)| *t)?;
                Some((last, id))
            })
            .max()
            .map(|(_, id)| id)
    });
    match marker {
        Some(id) => {
            let s = vocab.series(id);
            let pts_m = series(&pts, id);
            let uln = s.uln.unwrap_or(1.0);
            if let Some(&(t_last, last)) = pts_m.last() {
                b.set("marker_last_uln", Some(last / uln));
                let nadir = pts_m.iter().map(|(_, v)| *v).chain(state.dropped_min(id).map(f64::from)).fold(f64::INFINITY, f64::min);
                b.set("marker_last_nadir", (nadir > 0.0).then(|| last / nadir));
                let recent: Vec<(f64, f64)> =
                    pts_m.iter().filter(|(t, v)| days_ago(*t) <= 90.0 && *v > 0.0).map(|(t, v)| (-days_ago(*t), v.ln())).collect();
                b.set("marker_log_slope_30d", slope(&recent).map(|s| s * 30.0));
                let above = pts_m.iter().rev().take(3).filter(|(_, v)| *v > uln).count();
                b.set("marker_above_uln_last3", Some(above as f64));
                b.set("marker_days_since", Some(days_ago(t_last)));
            }
            b.set("marker_missing", Some(if pts_m.is_empty() { 1.0 } else { 0.0 }));
        }
        None => b.set("marker_missing", Some(1.0)),
    }

    // Labs as last / ULN and change over 180 days (in ULN units).
    let mut any_lab = false;
    for key in ["alp", "ldh", "bilirubin", "ast", "alt"] {
        let Some(id) = vocab.series_by_key(key) else {
            continue;
        };
        let uln = vocab.series(id).uln.unwrap_or(1.0);
        let p = series(&pts, id);
        if let Some(&(_, last)) = p.last() {
            any_lab = true;
            b.set(&format!("{key}_uln"), Some(last / uln));
            b.set(&format!("{key}_change_180d"), change(&p, as_of, 180.0).map(|d| d / uln));
        }
    }
    b.set("labs_missing", Some(if any_lab { 0.0 } else { 1.0 }));
    if let Some(id) = vocab.series_by_key("calcium") {
        let p = series(&pts, id);
        b.set("calcium_last", p.last().map(|(_, v)| *v));
        b.set("calcium_max_90d", p.iter().filter(|(t, _)| days_ago(*t) <= 90.0).map(|(_, v)| *v).reduce(f64::max));
    }
    let last_of = |key: &str| vocab.series_by_key(key).and_then(|id| series(&pts, id).last().map(|(_, v)| *v));
    b.set("albumin_last", last_of("albumin"));
    b.set("haemoglobin_last", last_of("haemoglobin"));
    if let Some(id) = vocab.series_by_key("haemoglobin") {
        b.set("haemoglobin_change_180d", change(&series(&pts, id), as_of, 180.0));
    }
    b.set("platelets_last", last_of("platelets"));
    b.set("bmi_last", last_of("bmi"));
    if let Some(id) = vocab.series_by_key("weight") {
        let p = series(&pts, id);
        for (name, window) in [("weight_change_pct_90d", 90.0), ("weight_change_pct_180d", 180.0)] {
            let pct = change(&p, as_of, window).and_then(|d| {
                let first = p.iter().find(|(t, _)| days_ago(*t) <= window).map(|(_, v)| *v)?;
                (first > 0.0).then(|| 100.0 * d / first)
            });
            b.set(name, pct);
        }
    }
    let ecog: Vec<(EventTime, f64)> = pts
        .iter()
        .filter_map(|p| match p.kind {
            PointKind::Ecog(v) => Some((p.time, f64::from(v))),
            _ => None,
        })
        .collect();
    b.set("ecog_last", ecog.last().map(|(_, v)| *v));
    b.set("ecog_change", change(&ecog, as_of, 180.0));

    // Imaging.
    let studies: Vec<(f64, u8)> = pts
        .iter()
        .filter_map(|p| match p.kind {
            PointKind::Imaging(bits) => Some((days_ago(p.time), bits)),
            _ => None,
        })
        .collect();
    let count = |pred: &dyn Fn(f64, u8) -> bool| studies.iter().filter(|(d, bits)| pred(*d, *bits)).count() as f64;
    b.set("ct_mr_studies_90d", Some(count(&|d, bits| d <= 90.0 && bits & 1 != 0)));
    b.set("pet_nm_studies_90d", Some(count(&|d, bits| d <= 90.0 && bits & 2 != 0)));
    let n90 = count(&|d, _| d <= 90.0);
    let prior = count(&|d, _| d > 90.0 && d <= 455.0);
    b.set("imaging_rate_ratio", Some(n90 / (1.0 + prior * 90.0 / 365.0)));
    b.set("imaging_days_since", studies.last().map(|(d, _)| *d));
    b.set("imaging_missing", Some(if studies.is_empty() { 1.0 } else { 0.0 }));

    // Findings in 90 days by group; pathological fracture ever.
    for g in FindingGroup::ALL {
        let n = pts.iter().filter(|p| matches!(p.kind, PointKind::Finding(x) if x == g) && days_ago(p.time) <= 90.0).count() as f64;
        match g {
            FindingGroup::Fracture => {
                let ever = pts.iter().any(|p| matches!(p.kind, PointKind::Finding(FindingGroup::Fracture)));
                b.set("pathological_fracture", Some(if ever { 1.0 } else { 0.0 }));
            }
            _ => b.set(&format!("findings_{}_90d", group_name(g)), Some(n)),
        }
    }

    // Activity.
    b.set("events_30d", Some(pts.iter().filter(|p| days_ago(p.time) <= 30.0).count() as f64));
    let latest = pts.last().map(|p| p.time);
    let previous = latest.and_then(|l| pts.iter().rev().find(|p| p.time < l).map(|p| p.time));
    b.set("days_since_previous_event", previous.map(|t| days_ago(t) * DAY));

    FeatureVector { as_of, values: b.values }
}

fn group_name(g: FindingGroup) -> &'static str {
    match g {
        FindingGroup::Bone => "bone",
        FindingGroup::Neuro => "neuro",
        FindingGroup::Hepatic => "hepatic",
        FindingGroup::Respiratory => "respiratory",
        FindingGroup::Constitutional => "constitutional",
        FindingGroup::Fracture => "fracture",
    }
}

/// (time, value) of one series, oldest first.
fn series(pts: &[&Point], id: SeriesId) -> Vec<(EventTime, f64)> {
    pts.iter()
        .filter_map(|p| match p.kind {
            PointKind::Measurement { series, value, .. } if series == id => Some((p.time, f64::from(value))),
            _ => None,
        })
        .collect()
}

/// Last value minus the earliest value within `window` days of `as_of` (needs two points in the window).
fn change(p: &[(EventTime, f64)], as_of: EventTime, window: f64) -> Option<f64> {
    let inside: Vec<&(EventTime, f64)> = p.iter().filter(|(t, _)| as_of.days_since(*t) <= window).collect();
    match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if inside.len() >= 2 => Some(b.1 - a.1),
        _ => None,
    }
}

/// Least-squares slope of y over x; `None` with fewer than two distinct x.
fn slope(xy: &[(f64, f64)]) -> Option<f64> {
    if xy.len() < 2 {
        return None;
    }
    let n = xy.len() as f64;
    let mx = xy.iter().map(|(x, _)| x).sum::<f64>() / n;
    let my = xy.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xy.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 1e-9).then(|| sxy / sxx)
}
