//! Explanations: the top contributing features in plain words, and which retained points are their
//! evidence (for the alert's `basis`).

use crate::core::features::{FeatureVector, NAMES};
use crate::core::state::PointKind;
use crate::core::vocabulary::{FindingGroup, SeriesKind, StageAxis, Vocabulary};

/// Indices of the (up to) `n` features that raised the score most (positive contributions, largest first;
/// ties broken by schema order so the choice is deterministic).
pub fn top_features(contributions: &[f64], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..contributions.len()).filter(|i| contributions[*i] > 0.0).collect();
    idx.sort_by(|a, b| contributions[*b].total_cmp(&contributions[*a]).then(a.cmp(b)));
    idx.truncate(n);
    idx
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "missing".into(),
    }
}

/// One plain-words sentence for a feature's value.
pub fn sentence(i: usize, fv: &FeatureVector) -> String {
    let v = fv.values.get(i).copied().flatten();
    let name = NAMES.get(i).copied().unwrap_or("");
    match name {
        "marker_last_uln" => format!("tumour marker at {}x its upper reference limit", num(v)),
        "marker_last_nadir" => format!("tumour marker rose {}x from its nadir", num(v)),
        "marker_log_slope_30d" => format!("tumour marker rising {} per 30 days (log scale) over 90 days", num(v)),
        "marker_above_uln_last3" => format!("{} of the last 3 tumour markers above the reference limit", num(v)),
        "pet_nm_studies_90d" => format!("{} PET or bone-scan studies in 90 days", num(v)),
        "ct_mr_studies_90d" => format!("{} CT or MR studies in 90 days", num(v)),
        "imaging_rate_ratio" => format!("imaging {}x its usual rate", num(v)),
        "weight_change_pct_90d" => format!("weight changed {}% in 90 days", num(v)),
        "weight_change_pct_180d" => format!("weight changed {}% in 180 days", num(v)),
        "calcium_max_90d" => format!("calcium up to {} mg/dL in 90 days", num(v)),
        "calcium_last" => format!("calcium {} mg/dL", num(v)),
        "albumin_last" => format!("albumin {} g/dL", num(v)),
        "haemoglobin_last" => format!("haemoglobin {} g/dL", num(v)),
        "ecog_last" => format!("ECOG performance status {}", num(v)),
        "ecog_change" => format!("ECOG changed by {} in 180 days", num(v)),
        "stage_group" => format!("stage group {}", num(v)),
        "days_since_diagnosis" => format!("{} days since diagnosis", num(v)),
        n if n.ends_with("_uln") => format!("{} at {}x its upper reference limit", n.trim_end_matches("_uln").to_uppercase(), num(v)),
        n if n.ends_with("_change_180d") => {
            format!("{} changed by {}x its reference limit in 180 days", n.trim_end_matches("_change_180d").to_uppercase(), num(v))
        }
        n if n.starts_with("findings_") => {
            format!("{} {} finding(s) in 90 days", num(v), n.trim_start_matches("findings_").trim_end_matches("_90d"))
        }
        "pathological_fracture" => "a pathological fracture recorded".into(),
        n => format!("{} = {}", n.replace('_', " "), num(v)),
    }
}

/// Whether a retained point is evidence for a feature (used to pick the alert's basis).
pub fn is_evidence(feature: usize, p: &PointKind, vocab: &Vocabulary) -> bool {
    let name = NAMES.get(feature).copied().unwrap_or("");
    match p {
        PointKind::Measurement { series, .. } => {
            let s = vocab.series(*series);
            if name.starts_with("marker_") {
                s.kind == SeriesKind::Marker
            } else {
                let key = name.split('_').next().unwrap_or("");
                !key.is_empty() && s.key == key
            }
        }
        PointKind::Ecog(_) => name.starts_with("ecog"),
        PointKind::Imaging(_) => name.contains("studies") || name.starts_with("imaging"),
        PointKind::Finding(FindingGroup::Fracture) => name == "pathological_fracture",
        PointKind::Finding(g) => name == format!("findings_{}_90d", format!("{g:?}").to_lowercase()),
        PointKind::Stage { axis, .. } => {
            matches!((axis, name), (StageAxis::Group, "stage_group") | (StageAxis::T, "t_category") | (StageAxis::N, "n_category"))
        }
        _ => false,
    }
}
