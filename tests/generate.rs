//! `oncowatch generate`: determinism, every generated resource decodes with the project's own decoder (faults
//! give the expected outcomes), the truth file's clinical shape, and FHIR R4 validity checked by an
//! independent library (Python `fhir.resources`, R4B models).

mod common;

use common::engine;
use oncowatch::core::engine::States;
use oncowatch::core::identity::{PatientKey, Pseudonymizer, DEVELOPMENT_PSEUDONYM_KEY};
use oncowatch::core::reason::{IgnoreReason, Outcome, Tally};
use oncowatch::drivers::generate::{
    cohort, cohort_truth, delivery_order, generate, truth_csv, CohortOptions, Faults, Format, GenerateOptions,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oncowatch-gen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn pseudonyms() -> Pseudonymizer {
    Pseudonymizer::new(DEVELOPMENT_PSEUDONYM_KEY.as_bytes())
}

const FAULTS: Faults = Faults { late: 0.05, duplicates: 0.05, amended: 0.05, entered_in_error: 0.03 };

fn run(dir: &Path, patients: u64, seed: u64, format: Format, faults: Faults) {
    let opts = GenerateOptions { cohort: CohortOptions { patients, seed, faults }, out: dir.to_path_buf(), format, progress: false };
    let s = generate(&opts, &pseudonyms()).expect("generate");
    assert_eq!(s.patients, patients);
}

/// Every file under `dir`, relative path -> bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn same_arguments_give_byte_identical_files_and_another_seed_differs() {
    for format in [Format::Ndjson, Format::Bundles] {
        let tag = format!("{format:?}");
        let (a, b, c) = (tmp(&format!("det-a-{tag}")), tmp(&format!("det-b-{tag}")), tmp(&format!("det-c-{tag}")));
        run(&a, 40, 7, format, FAULTS);
        run(&b, 40, 7, format, FAULTS);
        run(&c, 40, 8, format, FAULTS);
        let (fa, fb, fc) = (files(&a), files(&b), files(&c));
        assert!(fa.contains_key("truth.csv"));
        match format {
            Format::Ndjson => assert!(fa.contains_key("cohort.ndjson")),
            Format::Bundles => {
                assert!(fa.keys().any(|k| k.ends_with("-1-transaction.json")));
                assert!(fa.keys().any(|k| k.ends_with("-2-corrections.json")));
            }
        }
        assert!(!fa.keys().any(|k| k.contains(".tmp")), "no temporary file left");
        assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
        for (k, v) in &fa {
            assert!(fb[k] == *v, "{tag}: {k} differs between two identical runs");
        }
        assert_ne!(fa.get("truth.csv"), fc.get("truth.csv"));
        for d in [a, b, c] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn ndjson_is_in_delivery_order_and_matches_the_library() {
    let d = tmp("order");
    let opts = CohortOptions { patients: 12, seed: 3, faults: FAULTS };
    run(&d, opts.patients, opts.seed, Format::Ndjson, opts.faults);
    let text = std::fs::read_to_string(d.join("cohort.ndjson")).expect("ndjson");
    let patients = cohort(&opts);
    let want: Vec<String> = delivery_order(&patients).into_iter().map(|(p, r)| patients[p].resources[r].resource.to_string()).collect();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(g, w)| *g == w.as_str()));
    // truth.csv is the library's truth under the same key.
    let truth = std::fs::read_to_string(d.join("truth.csv")).expect("truth");
    assert_eq!(truth, truth_csv(&pseudonyms(), &cohort_truth(&opts)));
    let _ = std::fs::remove_dir_all(d);
}

/// Runs records through a fresh engine; returns the tally and the patients seen.
fn process<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> (Tally, BTreeSet<PatientKey>) {
    let e = engine();
    let mut states = States::new();
    let mut tally = Tally::default();
    for r in records {
        tally.records += 1;
        let report = e.process(&mut states, r, None, None);
        for res in &report.resources {
            if let Outcome::Rejected(reason, msg) = &res.outcome {
                panic!("generated {:?} rejected: {} {msg}", res.resource_type, reason.code());
            }
            tally.count(&res.outcome);
        }
    }
    (tally, states.keys().cloned().collect())
}

fn assert_clean(t: &Tally, faults: bool) {
    let ig = |r: IgnoreReason| t.ignored.get(&r).copied().unwrap_or(0);
    assert!(t.balances());
    assert_eq!(t.rejected_total(), 0);
    for r in [
        IgnoreReason::UnconvertibleUnit,
        IgnoreReason::NotRelevant,
        IgnoreReason::NoValue,
        IgnoreReason::StatusExcluded,
        IgnoreReason::UnsupportedResource,
        IgnoreReason::SubjectNotPatient,
    ] {
        assert_eq!(ig(r), 0, "{} outcomes: {t:?}", r.code());
    }
    let dup = ig(IgnoreReason::Duplicate);
    let stale = ig(IgnoreReason::StaleVersion);
    assert_eq!(t.applied + dup + stale, t.resources);
    if faults {
        assert!(dup > 0, "duplicates were asked for: {t:?}");
    } else {
        assert_eq!(dup + stale, 0, "{t:?}");
    }
}

#[test]
fn every_generated_resource_decodes_and_faults_give_their_outcomes() {
    // Without faults: everything applied.
    let clean = cohort(&CohortOptions { patients: 40, seed: 11, faults: Faults::default() });
    let lines: Vec<Vec<u8>> =
        delivery_order(&clean).into_iter().map(|(p, r)| clean[p].resources[r].resource.to_string().into_bytes()).collect();
    let (t, seen) = process(lines.iter().map(Vec::as_slice));
    assert_clean(&t, false);
    assert_eq!(t.applied, t.resources);
    let keys: BTreeSet<PatientKey> = clean.iter().map(|p| p.key.clone()).collect();
    assert_eq!(seen, keys, "every resource is keyed to its generated patient");

    // With faults, NDJSON as written.
    let d = tmp("decode");
    run(&d, 60, 12, Format::Ndjson, FAULTS);
    let text = std::fs::read(d.join("cohort.ndjson")).expect("ndjson");
    let (t, _) = process(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()));
    assert_clean(&t, true);
    assert!(t.ignored[&IgnoreReason::StaleVersion] > 0, "{t:?}");

    // With faults, Bundles as written (sorted file names = per patient, transaction then corrections).
    let b = tmp("decode-bundles");
    run(&b, 30, 12, Format::Bundles, FAULTS);
    let all = files(&b);
    let bundles: Vec<&[u8]> = all.iter().filter(|(k, _)| k.starts_with("bundles")).map(|(_, v)| v.as_slice()).collect();
    let (t, seen) = process(bundles);
    assert_clean(&t, true);
    assert_eq!(seen.len(), 30);
    for d in [d, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn truth_has_the_intended_clinical_shape() {
    let truth = cohort_truth(&CohortOptions { patients: 2000, seed: 1, faults: Faults::default() });
    let eligible: Vec<_> = truth.iter().filter(|(_, t)| t.eligible).collect();
    let ineligible = truth.len() - eligible.len();
    assert!(ineligible > 20 && ineligible < 200, "ineligible: {ineligible}");
    let met = eligible.iter().filter(|(_, t)| t.metastasis.is_some()).count();
    let share = met as f64 / eligible.len() as f64;
    assert!((0.15..=0.25).contains(&share), "metastasis share {share}");
    let rate = |stage: u8| {
        let s: Vec<_> = eligible.iter().filter(|(_, t)| t.stage == Some(stage)).collect();
        s.iter().filter(|(_, t)| t.metastasis.is_some()).count() as f64 / s.len() as f64
    };
    assert!(rate(3) > rate(1) + 0.1, "stage III {} vs I {}", rate(3), rate(1));
    for (_, t) in &truth {
        if !t.eligible {
            assert!(t.site.is_none() && t.stage.is_none() && t.metastasis.is_none());
        }
        if let Some(m) = t.metastasis {
            let days = m.days_since(t.diagnosis);
            assert!((90.0..=915.0).contains(&days), "{days}");
        }
    }
    let sites: BTreeSet<_> = eligible.iter().filter_map(|(_, t)| t.site).collect();
    assert_eq!(sites.len(), 6);
    // The CSV: header, one row per patient, pseudonym of the canonical key.
    let csv = truth_csv(&pseudonyms(), &truth[..3]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("patient_hash,primary_site,stage,metastasis_date,eligible"));
    let first = lines.next().expect("row");
    let hash = pseudonyms().pseudonym(&PatientKey::from_id("gen-1-1"));
    assert!(first.starts_with(&format!("{hash},")), "{first}");
    assert_eq!(first.split(',').count(), 5);
}

#[test]
fn a_sample_validates_as_fhir_r4_with_an_independent_library() {
    let have = Command::new("python3").args(["-c", "import fhir.resources.R4B"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !have {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with fhir.resources is required on CI");
        }
        eprintln!("note: python3 with fhir.resources (R4B) not found; FHIR validation skipped");
        return;
    }
    let d = tmp("validate");
    run(&d, 40, 5, Format::Ndjson, FAULTS);
    let text = std::fs::read_to_string(d.join("cohort.ndjson")).expect("ndjson");
    // About 300 lines spread over the file, plus the first line of every (type, fault) shape.
    let lines: Vec<&str> = text.lines().collect();
    let step = (lines.len() / 300).max(1);
    let mut sample: Vec<&str> = lines.iter().step_by(step).copied().collect();
    let mut shapes = BTreeSet::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let shape = (
            v["resourceType"].as_str().unwrap_or("").to_string(),
            v["meta"]["versionId"].as_str().unwrap_or("").to_string(),
            v["status"].as_str().unwrap_or("").to_string(),
            v.get("valueQuantity").is_some(),
            v.get("valueInteger").is_some(),
        );
        if shapes.insert(shape) {
            sample.push(l);
        }
    }
    let sample_path = d.join("sample.ndjson");
    std::fs::write(&sample_path, sample.join("\n")).expect("write sample");
    let b = tmp("validate-bundles");
    run(&b, 3, 5, Format::Bundles, FAULTS);
    let mut args = vec![sample_path];
    for e in std::fs::read_dir(b.join("bundles")).expect("bundles") {
        args.push(e.expect("entry").path());
    }
    args.sort();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhir_validate.py");
    let out = Command::new("python3").arg(script).args(&args).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let count: u64 = stdout.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or(0);
    assert!(count >= 300, "{stdout}");
    for d in [d, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}
