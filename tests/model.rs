//! The model: compiled trees equal smartcore's own `predict` bit for bit (also after a JSON round trip of
//! the model file), attributions sum to the raw score minus the base value, and a corrupt, truncated or
//! schema-mismatched model file fails at load with a clear error.

use oncowatch::core::features::{FeatureVector, NAMES, N_FEATURES};
use oncowatch::core::identity::EventTime;
use oncowatch::core::model::calibration::Isotonic;
use oncowatch::core::model::forest::Forest;
use oncowatch::core::model::{Model, ModelError, ModelFile, SchemaRef, FORMAT_VERSION, MODEL_NAME};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};

/// Deterministic pseudo-random rows with a learnable signal in a few features.
fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut rows = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..n {
        let row: Vec<f64> = (0..N_FEATURES).map(|j| if j % 7 == 0 { (next() * 10.0).round() } else { next() * 3.0 - 1.0 }).collect();
        let y = if row[12] + 0.5 * row[17] - 0.3 * row[33] + 0.4 * next() > 1.2 { 1.0 } else { 0.0 };
        rows.push(row);
        ys.push(y);
    }
    (rows, ys)
}

fn fit(rows: &[Vec<f64>], ys: &[f64], trees: usize) -> (XGRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>, Forest) {
    let x = DenseMatrix::new(rows.len(), N_FEATURES, rows.iter().flatten().copied().collect(), false).expect("matrix");
    let p = XGRegressorParameters::default()
        .with_n_estimators(trees)
        .with_max_depth(5)
        .with_learning_rate(0.1)
        .with_min_child_weight(5)
        .with_base_score(0.3);
    let m = XGRegressor::fit(&x, &ys.to_vec(), p).expect("fit");
    let json = serde_json::to_value(&m).expect("serde form");
    let forest = Forest::from_smartcore_json(&json, N_FEATURES).expect("compile");
    (m, forest)
}

#[test]
fn compiled_trees_equal_smartcore_predict_bit_for_bit() {
    let (rows, ys) = data(1500, 1);
    let (m, forest) = fit(&rows, &ys, 40);
    let (test, _) = data(800, 2);
    let xm = DenseMatrix::new(test.len(), N_FEATURES, test.iter().flatten().copied().collect(), false).expect("matrix");
    let theirs = m.predict(&xm).expect("predict");
    // Also through the model file's JSON (float_roundtrip keeps every bit).
    let forest2: Forest = serde_json::from_str(&serde_json::to_string(&forest).expect("ser")).expect("de");
    let mut distinct = std::collections::BTreeSet::new();
    for (row, t) in test.iter().zip(&theirs) {
        assert_eq!(forest.predict(row).to_bits(), t.to_bits());
        assert_eq!(forest2.predict(row).to_bits(), t.to_bits());
        distinct.insert(t.to_bits());
    }
    assert!(distinct.len() > 50, "the trees must actually split ({} distinct scores)", distinct.len());
}

#[test]
fn attributions_sum_to_raw_minus_base_value() {
    let (rows, ys) = data(1000, 3);
    let (_, forest) = fit(&rows, &ys, 30);
    let base = forest.base_value();
    let mut nonzero = 0;
    for row in data(300, 4).0 {
        let (raw, c) = forest.explain(&row);
        let sum: f64 = c.iter().sum();
        assert!((raw - base - sum).abs() < 1e-9, "raw {raw} base {base} sum {sum}");
        nonzero += c.iter().filter(|v| **v != 0.0).count();
    }
    assert!(nonzero > 0);
    // The signal features carry the largest attribution on average.
    let mean_abs = |j: usize| data(300, 4).0.iter().map(|r| forest.explain(r).1[j].abs()).sum::<f64>();
    assert!(mean_abs(12) > mean_abs(5));
}

fn model_file() -> ModelFile {
    let (rows, ys) = data(600, 5);
    let (_, forest) = fit(&rows, &ys, 10);
    let pairs: Vec<(f64, f64)> = rows.iter().map(|r| forest.predict(r)).zip(ys.iter().copied()).collect();
    ModelFile {
        format_version: FORMAT_VERSION,
        name: MODEL_NAME.into(),
        schema: SchemaRef::current(),
        horizon_days: 180,
        imputation: vec![0.0; N_FEATURES],
        forest,
        calibration: Isotonic::fit(&pairs).expect("calibration"),
        training: serde_json::json!({}),
    }
}

#[test]
fn model_file_loads_scores_and_names_its_version() {
    let bytes = serde_json::to_vec(&model_file()).expect("ser");
    let m = Model::from_bytes(&bytes).expect("load");
    assert!(m.version.starts_with("sha256:"));
    let fv = FeatureVector { as_of: EventTime(0), values: [None; N_FEATURES] };
    let s = m.score(&fv);
    assert!((0.0..=1.0).contains(&s.probability));
    assert_eq!(s.contributions.len(), NAMES.len());
}

#[test]
fn corrupt_truncated_and_mismatched_model_files_fail_clearly() {
    let bytes = serde_json::to_vec(&model_file()).expect("ser");
    let truncated = Model::from_bytes(&bytes[..bytes.len() / 2]).expect_err("truncated");
    assert!(matches!(truncated, ModelError::Corrupt(_)), "{truncated}");
    let mut f = model_file();
    f.schema.version += 1;
    let e = Model::from_bytes(&serde_json::to_vec(&f).expect("ser")).expect_err("schema");
    assert!(matches!(e, ModelError::Schema { .. }) && e.to_string().contains("retrain"), "{e}");
    let mut f = model_file();
    f.schema.features.swap(0, 1);
    assert!(matches!(Model::from_bytes(&serde_json::to_vec(&f).expect("ser")), Err(ModelError::Schema { .. })));
    let mut f = model_file();
    f.format_version = 99;
    assert!(matches!(Model::from_bytes(&serde_json::to_vec(&f).expect("ser")), Err(ModelError::Format(99))));
    let mut f = model_file();
    f.forest.nodes[0].left = 10_000_000;
    f.forest.nodes[0].feature = 0;
    assert!(matches!(Model::from_bytes(&serde_json::to_vec(&f).expect("ser")), Err(ModelError::Invalid(_))));
    assert!(matches!(Model::from_bytes(b"not json"), Err(ModelError::Corrupt(_))));
}
