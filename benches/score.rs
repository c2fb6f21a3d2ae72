//! Scoring benchmark, predictions per second on one core.
//!
//! (a) The default model (`models/default.json`) on real feature rows: 300 generated patients (seed 42, no
//! faults) replayed through the engine, features at each patient's latest event time, imputed; the compiled
//! forest's `predict` (goal >= 1,000,000/s) and the whole `Model::score` (impute + predict + attributions +
//! calibration).
//! (b) Baseline, in the same run: smartcore's `XGRegressor` fitted with the default model's shape (100 trees,
//! depth 6, learning rate 0.1, min_child_weight 20) on 20,000 synthetic rows x 53 features, its own
//! `predict` on a `DenseMatrix` against the compiled forest's `predict` on the same rows, with the ratio and
//! a bit-for-bit check of the outputs.
//!
//! Run: `cargo bench --bench score` (release build).

use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::{Engine, States};
use oncowatch::core::features::{compute, FeatureVector, N_FEATURES};
use oncowatch::core::identity::{Pseudonymizer, DEVELOPMENT_PSEUDONYM_KEY};
use oncowatch::core::model::forest::Forest;
use oncowatch::core::model::Model;
use oncowatch::core::vocabulary::Vocabulary;
use oncowatch::drivers::generate::{cohort, delivery_order, CohortOptions, Faults};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

/// Best of `ROUNDS` timings of `f`, which makes `n` predictions; returns predictions per second.
fn rate(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    n as f64 / best.as_secs_f64()
}

/// Real feature vectors: generated patients replayed, features as of each patient's latest event.
fn real_features(patients: u64, vocab: &Vocabulary) -> (Vec<FeatureVector>, usize) {
    let gen = cohort(&CohortOptions { patients, seed: 42, faults: Faults::default() });
    let engine = Engine::new(vocab.clone(), DecodeOptions::default(), Pseudonymizer::new(DEVELOPMENT_PSEUDONYM_KEY.as_bytes()));
    let mut states = States::new();
    for (p, r) in delivery_order(&gen) {
        let bytes = serde_json::to_vec(&gen[p].resources[r].resource).expect("serialise");
        engine.process(&mut states, &bytes, None, None);
    }
    let eligible = states.values().filter(|s| s.latest.is_some_and(|t| s.eligible(t))).count();
    let fvs = states.values().filter_map(|s| s.latest.map(|t| compute(s, vocab, t))).collect();
    (fvs, eligible)
}

/// Deterministic synthetic rows with a learnable, interacting signal spread over many features.
fn synthetic(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut rows = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..N_FEATURES).map(|j| if j % 7 == 0 { (next() * 10.0).round() } else { next() * 3.0 - 1.0 }).collect();
        let z = row[12] + 0.5 * row[17] - 0.3 * row[33] + 0.2 * row[7] * row[40] - 0.4 * (row[21] * row[28]).sin() + 0.1 * row[0]
            - 0.5 * f64::from(u8::from(row[45] > 1.0))
            + 0.6 * next();
        ys.push(if z > 1.2 { 1.0 } else { 0.0 });
        rows.push(row);
    }
    (rows, ys)
}

fn matrix(rows: &[Vec<f64>]) -> DenseMatrix<f64> {
    DenseMatrix::new(rows.len(), N_FEATURES, rows.iter().flatten().copied().collect(), false).expect("matrix")
}

fn main() {
    let vocab = Vocabulary::builtin().expect("vocabulary");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default.json");
    let model = Model::load(&path).expect("default model");
    let forest = &model.file.forest;
    let t = Instant::now();
    let (fvs, eligible) = real_features(300, &vocab);
    let rows: Vec<Vec<f64>> = fvs.iter().map(|fv| model.row(fv)).collect();
    let missing = fvs.iter().map(|fv| fv.values.iter().filter(|v| v.is_none()).count()).sum::<usize>() as f64 / fvs.len() as f64;
    println!(
        "score bench: default model {} ({} trees, {} nodes); {} real feature rows from 300 generated patients ({} eligible, {:.1} of {} features missing on average; built in {:.1} s)",
        model.version,
        forest.roots.len(),
        forest.nodes.len(),
        rows.len(),
        eligible,
        missing,
        N_FEATURES,
        t.elapsed().as_secs_f64()
    );

    // (a) the default model on real rows.
    let reps = 4000;
    let n = rows.len() * reps;
    let predict = rate(n, || {
        for _ in 0..reps {
            for r in &rows {
                black_box(forest.predict(black_box(r)));
            }
        }
    });
    let score_reps = 400;
    let score = rate(fvs.len() * score_reps, || {
        for _ in 0..score_reps {
            for fv in &fvs {
                black_box(model.score(black_box(fv)));
            }
        }
    });
    println!();
    println!("{:<60} {:>14} {:>10}", "default model, real rows (best of 5, one core)", "predictions/s", "ns/row");
    println!("{:<60} {:>14.0} {:>10.1}", "Forest::predict (imputed row)", predict, 1e9 / predict);
    println!("{:<60} {:>14.0} {:>10.1}", "Model::score (impute + predict + attributions + calib.)", score, 1e9 / score);
    println!("goal Forest::predict >= 1,000,000/s: {}", predict >= 1_000_000.0);

    // (b) baseline: smartcore with the same shape, against its compiled form, on the same rows.
    let (train_rows, ys) = synthetic(20_000, 1);
    let t = Instant::now();
    let params = XGRegressorParameters::default()
        .with_n_estimators(100)
        .with_max_depth(6)
        .with_learning_rate(0.1)
        .with_min_child_weight(20)
        .with_lambda(1.0)
        .with_base_score(ys.iter().sum::<f64>() / ys.len() as f64)
        .with_seed(7);
    let m = XGRegressor::fit(&matrix(&train_rows), &ys, params).expect("fit");
    let fit_time = t.elapsed();
    let compiled = Forest::from_smartcore_json(&serde_json::to_value(&m).expect("serde form"), N_FEATURES).expect("compile");
    let (test_rows, _) = synthetic(10_000, 2);
    let xm = matrix(&test_rows);
    println!();
    println!(
        "baseline: smartcore XGRegressor fitted on {} x {} synthetic rows in {:.1} s ({} trees, {} nodes); {} test rows",
        train_rows.len(),
        N_FEATURES,
        fit_time.as_secs_f64(),
        compiled.roots.len(),
        compiled.nodes.len(),
        test_rows.len()
    );
    let theirs = m.predict(&xm).expect("predict");
    let ours: Vec<f64> = test_rows.iter().map(|r| compiled.predict(r)).collect();
    let identical = theirs.iter().zip(&ours).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    let distinct: std::collections::BTreeSet<u64> = ours.iter().map(|v| v.to_bits()).collect();
    let sc = rate(test_rows.len(), || {
        black_box(m.predict(black_box(&xm)).expect("predict"));
    });
    let reps = 50;
    let ow = rate(test_rows.len() * reps, || {
        for _ in 0..reps {
            for r in &test_rows {
                black_box(compiled.predict(black_box(r)));
            }
        }
    });
    println!("{:<60} {:>14} {:>10}", "same-shape model, synthetic rows (best of 5, one core)", "predictions/s", "ns/row");
    println!("{:<60} {:>14.0} {:>10.1}", "smartcore XGRegressor::predict (DenseMatrix, baseline)", sc, 1e9 / sc);
    println!("{:<60} {:>14.0} {:>10.1}", "compiled Forest::predict", ow, 1e9 / ow);
    println!("ratio compiled / smartcore: {:.1}", ow / sc);
    println!(
        "outputs bit-identical: {} ({identical} of {} rows; {} distinct scores)",
        identical == test_rows.len(),
        test_rows.len(),
        distinct.len()
    );
}
