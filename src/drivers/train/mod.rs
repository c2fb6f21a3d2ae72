//! `oncowatch train`: labelled FHIR history through the same decode, state and feature code the service
//! runs; snapshots, labels, a patient-level split, smartcore's gradient-boosted trees, isotonic calibration,
//! evaluation (including the alert policy replayed over the test patients), the model file and its report.
//!
//! Snapshots: after every applied event of an eligible patient, the features as of the patient's latest
//! event time are a candidate. Label for horizon H: 1 when confirmed metastasis falls in (t, t+H]; 0 when the
//! patient's follow-up (latest event) reaches t+H without it; censored (dropped) otherwise; none at or after
//! metastasis. At most `snapshots_per_patient` per patient, chosen by a seeded hash (deterministic). Split:
//! train 60 %, calibration 20 %, test 20 %, by a seeded hash of the patient key.

pub mod metrics;
pub mod report;

use super::input::{expand, for_each_record, total_bytes, InputError};
use crate::core::decode::{decode_record, Decoded};
use crate::core::engine::{Engine, RecordReport, States};
use crate::core::event::ClinicalEvent;
use crate::core::features::{compute, N_FEATURES};
use crate::core::identity::{fnv1a, EventTime, PatientKey};
use crate::core::model::calibration::Isotonic;
use crate::core::model::forest::Forest;
use crate::core::model::{Model, ModelFile, SchemaRef, FORMAT_VERSION, MODEL_NAME};
use crate::core::state::{ApplyResult, PatientState};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Hyper-parameters and sampling (config section `train`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub horizon_days: u32,
    pub snapshots_per_patient: usize,
    pub seed: u64,
    pub n_estimators: usize,
    pub max_depth: u16,
    pub learning_rate: f64,
    pub min_child_weight: usize,
    pub lambda: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            horizon_days: 180,
            snapshots_per_patient: 5,
            seed: 7,
            n_estimators: 100,
            max_depth: 6,
            learning_rate: 0.1,
            min_child_weight: 20,
            lambda: 1.0,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.horizon_days == 0 || self.snapshots_per_patient == 0 {
            return Err("train: horizon_days and snapshots_per_patient must be at least 1".into());
        }
        if self.n_estimators == 0 || self.n_estimators > 1000 || self.max_depth == 0 || self.max_depth > 16 {
            return Err("train: n_estimators must be 1..=1000 and max_depth 1..=16".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) || self.lambda < 0.0 {
            return Err("train: learning_rate must be in (0, 1] and lambda >= 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub report_dir: PathBuf,
    pub export_features: Option<PathBuf>,
    pub config: TrainConfig,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("training data: {0}")]
    Data(String),
    #[error("smartcore: {0}")]
    Fit(String),
    #[error("cannot write {path}: {message}")]
    Output { path: String, message: String },
}

fn out_err(p: &std::path::Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Output { path: p.display().to_string(), message: e.to_string() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Calibration,
    Test,
}

impl Split {
    pub fn of(seed: u64, key: &PatientKey) -> Split {
        match fnv1a(&[&seed.to_le_bytes(), b"split", key.as_str().as_bytes()]) % 100 {
            0..=59 => Split::Train,
            60..=79 => Split::Calibration,
            _ => Split::Test,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Calibration => "calibration",
            Split::Test => "test",
        }
    }
}

/// One labelled snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub patient: PatientKey,
    pub as_of: EventTime,
    pub label: f64,
    pub split: Split,
    pub features: crate::core::features::FeatureVector,
}

/// Candidates kept per patient before censoring is known (the lowest hash priorities).
const CANDIDATES: usize = 32;

struct PatientWork {
    state: PatientState,
    /// (priority, as_of, features) of the candidates kept so far.
    candidates: Vec<(u64, crate::core::features::FeatureVector)>,
    /// Events of test patients, kept to replay the alert policy after training.
    events: Vec<ClinicalEvent>,
    first_eligible: Option<EventTime>,
}

/// What training produced.
pub struct Trained {
    pub model_bytes: Vec<u8>,
    pub report: serde_json::Value,
    pub seconds: BTreeMap<&'static str, f64>,
}

/// Runs the whole training.
pub fn train(engine: &Engine, opts: &TrainOptions) -> Result<Trained, TrainError> {
    let cfg = &opts.config;
    cfg.validate().map_err(TrainError::Data)?;
    let mut seconds = BTreeMap::new();
    let t0 = Instant::now();

    // Pass 1: replay, collect candidate snapshots.
    let inputs = expand(&opts.inputs)?;
    let bar = super::progress::bar(opts.progress, total_bytes(&inputs), "replay");
    let mut work: BTreeMap<PatientKey, PatientWork> = BTreeMap::new();
    let mut records = 0u64;
    for_each_record(
        &inputs,
        |rec| {
            records += 1;
            for d in decode_record(&rec.bytes, &engine.vocab, &engine.decode, None) {
                let Decoded::Event(ev) = d.decoded else {
                    continue;
                };
                let w = work.entry(ev.patient.clone()).or_insert_with(|| PatientWork {
                    state: PatientState::new(ev.patient.clone()),
                    candidates: Vec::new(),
                    events: Vec::new(),
                    first_eligible: None,
                });
                if Split::of(cfg.seed, &ev.patient) == Split::Test {
                    w.events.push(ev.clone());
                }
                if w.state.apply(&ev) != ApplyResult::Applied {
                    continue;
                }
                let Some(as_of) = w.state.latest else {
                    continue;
                };
                if !w.state.eligible(as_of) {
                    continue;
                }
                w.first_eligible.get_or_insert(as_of);
                let prio = fnv1a(&[&cfg.seed.to_le_bytes(), ev.patient.as_str().as_bytes(), &as_of.0.to_le_bytes()]);
                // A later event at the same as_of replaces the earlier candidate (it knows more).
                w.candidates.retain(|(_, f)| f.as_of != as_of);
                if w.candidates.len() < CANDIDATES || w.candidates.iter().any(|(p, _)| *p > prio) {
                    w.candidates.push((prio, compute(&w.state, &engine.vocab, as_of)));
                    if w.candidates.len() > CANDIDATES {
                        if let Some(worst) = w.candidates.iter().enumerate().max_by_key(|(_, (p, _))| *p).map(|(i, _)| i) {
                            w.candidates.swap_remove(worst);
                        }
                    }
                }
            }
        },
        |n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    seconds.insert("replay", t0.elapsed().as_secs_f64());

    // Labels.
    let horizon = i64::from(cfg.horizon_days);
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for (key, w) in &work {
        let met = w.state.metastasis(EventTime(i64::MAX));
        let Some(end) = w.state.latest else { continue };
        let mut labelled: Vec<(u64, Snapshot)> = w
            .candidates
            .iter()
            .filter_map(|(prio, f)| {
                let t = f.as_of;
                if met.is_some_and(|m| m <= t) {
                    return None;
                }
                let label = match met {
                    Some(m) if m <= t.plus_days(horizon) => 1.0,
                    _ if end >= t.plus_days(horizon) => 0.0,
                    _ => return None,
                };
                Some((*prio, Snapshot { patient: key.clone(), as_of: t, label, split: Split::of(cfg.seed, key), features: f.clone() }))
            })
            .collect();
        labelled.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_of.cmp(&b.1.as_of)));
        snapshots.extend(labelled.into_iter().take(cfg.snapshots_per_patient).map(|(_, s)| s));
    }
    snapshots.sort_by(|a, b| (a.split, &a.patient, a.as_of).cmp(&(b.split, &b.patient, b.as_of)));
    let count = |s: Split| snapshots.iter().filter(|x| x.split == s).count();
    let positives = |s: Split| snapshots.iter().filter(|x| x.split == s && x.label > 0.5).count();
    for s in [Split::Train, Split::Calibration, Split::Test] {
        if count(s) == 0 || positives(s) == 0 || positives(s) == count(s) {
            return Err(TrainError::Data(format!(
                "the {} split needs snapshots of both labels (has {} rows, {} positive)",
                s.as_str(),
                count(s),
                positives(s)
            )));
        }
    }
    tracing::info!(
        patients = work.len(),
        snapshots = snapshots.len(),
        train = count(Split::Train),
        positives = positives(Split::Train),
        "snapshots labelled"
    );

    // Imputation: training medians.
    let imputation: Vec<f64> = (0..N_FEATURES)
        .map(|i| {
            let mut v: Vec<f64> = snapshots.iter().filter(|s| s.split == Split::Train).filter_map(|s| s.features.values[i]).collect();
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                0.0
            } else {
                v[v.len() / 2]
            }
        })
        .collect();
    let row = |s: &Snapshot| -> Vec<f64> { s.features.values.iter().zip(&imputation).map(|(v, m)| v.unwrap_or(*m)).collect() };
    let rows_of = |split: Split| -> (Vec<Vec<f64>>, Vec<f64>) {
        let sel: Vec<&Snapshot> = snapshots.iter().filter(|s| s.split == split).collect();
        (sel.iter().map(|s| row(s)).collect(), sel.iter().map(|s| s.label).collect())
    };

    if let Some(p) = &opts.export_features {
        export_features(engine, &snapshots, p)?;
    }

    // Fit.
    let t1 = Instant::now();
    let (xtr, ytr) = rows_of(Split::Train);
    let flat: Vec<f64> = xtr.iter().flatten().copied().collect();
    let x = DenseMatrix::new(xtr.len(), N_FEATURES, flat, false).map_err(|e| TrainError::Fit(e.to_string()))?;
    let params = XGRegressorParameters::default()
        .with_n_estimators(cfg.n_estimators)
        .with_max_depth(cfg.max_depth)
        .with_learning_rate(cfg.learning_rate)
        .with_min_child_weight(cfg.min_child_weight)
        .with_lambda(cfg.lambda)
        .with_base_score(ytr.iter().sum::<f64>() / ytr.len() as f64)
        .with_seed(cfg.seed);
    tracing::info!(
        rows = xtr.len(),
        trees = cfg.n_estimators,
        depth = cfg.max_depth,
        "fitting gradient-boosted trees (smartcore, one thread)"
    );
    let fitted = XGRegressor::fit(&x, &ytr, params).map_err(|e| TrainError::Fit(e.to_string()))?;
    seconds.insert("fit", t1.elapsed().as_secs_f64());
    let json = serde_json::to_value(&fitted).map_err(|e| TrainError::Fit(e.to_string()))?;
    let forest = Forest::from_smartcore_json(&json, N_FEATURES).map_err(|e| TrainError::Fit(e.to_string()))?;

    // The compiled trees must equal smartcore's predict on every test row, bit for bit.
    let (xte, yte) = rows_of(Split::Test);
    let xm = DenseMatrix::new(xte.len(), N_FEATURES, xte.iter().flatten().copied().collect(), false)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    let theirs: Vec<f64> = fitted.predict(&xm).map_err(|e| TrainError::Fit(e.to_string()))?;
    let ours: Vec<f64> = xte.iter().map(|r| forest.predict(r)).collect();
    let mismatches = ours.iter().zip(&theirs).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    if mismatches > 0 {
        return Err(TrainError::Fit(format!("compiled trees differ from smartcore's predict on {mismatches} test rows")));
    }

    // Calibration.
    let (xca, yca) = rows_of(Split::Calibration);
    let cal_pairs: Vec<(f64, f64)> = xca.iter().map(|r| forest.predict(r)).zip(yca.iter().copied()).collect();
    let calibration = Isotonic::fit(&cal_pairs).ok_or_else(|| TrainError::Data("no calibration rows".into()))?;
    let test_pairs: Vec<(f64, f64)> = ours.iter().map(|r| calibration.probability(*r)).zip(yte.iter().copied()).collect();
    let raw_test_pairs: Vec<(f64, f64)> = ours.iter().copied().zip(yte.iter().copied()).collect();

    let mut training = serde_json::json!({
        "patients": work.len(),
        "records": records,
        "snapshots": { "train": count(Split::Train), "calibration": count(Split::Calibration), "test": count(Split::Test) },
        "positives": { "train": positives(Split::Train), "calibration": positives(Split::Calibration), "test": positives(Split::Test) },
        "parameters": cfg,
        "compiled_equals_smartcore_rows": ours.len(),
        "data": "synthetic cohort from `oncowatch generate`: not clinical data",
    });
    let file = ModelFile {
        format_version: FORMAT_VERSION,
        name: MODEL_NAME.into(),
        schema: SchemaRef::current(),
        horizon_days: cfg.horizon_days,
        imputation,
        forest,
        calibration,
        training: training.clone(),
    };
    let model_bytes = serde_json::to_vec(&file).map_err(|e| TrainError::Fit(e.to_string()))?;
    let model = Model::from_bytes(&model_bytes).map_err(|e| TrainError::Fit(e.to_string()))?;

    // The alert policy over the test patients' timelines, with the trained model.
    let t2 = Instant::now();
    let scorer = Engine {
        vocab: engine.vocab.clone(),
        decode: engine.decode.clone(),
        pseudonyms: engine.pseudonyms.clone(),
        model: Some(model.clone()),
        policy: engine.policy.clone(),
    };
    let mut per_patient = Vec::new();
    for (key, w) in work.iter().filter(|(k, w)| Split::of(cfg.seed, k) == Split::Test && w.first_eligible.is_some()) {
        let mut states = States::new();
        let mut rep = RecordReport::default();
        for ev in &w.events {
            scorer.apply_event(&mut states, ev, None, &mut rep);
        }
        let end = w.state.latest.unwrap_or(EventTime(0));
        let met = w.state.metastasis(EventTime(i64::MAX));
        let alerts: Vec<(u8, EventTime)> = rep.alerts.iter().filter(|a| !a.withdrawn).map(|a| (a.tier, a.time)).collect();
        per_patient.push(report::PatientOutcome {
            _key: key.clone(),
            first_eligible: w.first_eligible.unwrap_or(end),
            end: met.unwrap_or(end).min(end),
            metastasis: met,
            alerts,
        });
    }
    seconds.insert("policy_eval", t2.elapsed().as_secs_f64());
    seconds.insert("total", t0.elapsed().as_secs_f64());
    let report = report::build(&test_pairs, &raw_test_pairs, &per_patient, cfg.horizon_days, &seconds, &model.version);
    if let Some(obj) = training.as_object_mut() {
        obj.insert("test".into(), report["test"].clone());
    }
    report::write(&opts.report_dir, &report, &test_pairs, &per_patient)?;
    Ok(Trained { model_bytes, report, seconds })
}

fn export_features(engine: &Engine, snapshots: &[Snapshot], p: &std::path::Path) -> Result<(), TrainError> {
    use super::features_csv::{cells, header};
    let mut text = header(&["patient_hash", "as_of", "label", "split"]);
    text.push('\n');
    for s in snapshots {
        let hash = engine.pseudonyms.pseudonym(&s.patient);
        text.push_str(&format!("{hash},{},{},{}{}\n", s.as_of.to_rfc3339(), s.label as u8, s.split.as_str(), cells(&s.features)));
    }
    std::fs::write(p, text).map_err(|e| out_err(p, e))
}

/// Writes the model file (creating its folder).
pub fn write_model(path: &std::path::Path, bytes: &[u8]) -> Result<(), TrainError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| out_err(dir, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| out_err(path, e))
}
