//! The shared FHIR corpus (../shared/fhir-corpus, all five folders) through the decoder and replay:
//! no panics, the accounting identity, resource counts equal to an independent walk of the raw JSON, and
//! every rejection named in a committed table with its reason.

mod common;

use common::{corpus, engine};
use oncowatch::core::engine::States;
use oncowatch::core::reason::{Outcome, Tally};
use oncowatch::drivers::input::{expand, for_each_record};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const FOLDERS: [&str; 5] = ["synthea-r4-sample", "mcode-stu1-examples", "hl7-r4-examples", "us-core-examples", "mitre-fixtures"];
const READ_TYPES: [&str; 4] = ["Observation", "Condition", "ImagingStudy", "Patient"];

/// Independent count of one record, following DESIGN.md "Decode" on the raw JSON: a Bundle is a container
/// (its entries count, nested Bundles up to depth 4, a deeper one counts once), a DELETE entry without a
/// resource counts, an entry with neither counts nothing, anything else is one resource.
fn count(v: &Value, depth: usize, types: &mut BTreeMap<String, u64>) -> u64 {
    let rt = v.get("resourceType").and_then(Value::as_str);
    let Some(rt) = rt.filter(|_| v.is_object()) else {
        *types.entry("(none)".into()).or_default() += 1;
        return 1;
    };
    if rt != "Bundle" || depth > 4 {
        *types.entry(rt.to_string()).or_default() += 1;
        return 1;
    }
    let mut n = 0;
    for e in v.get("entry").and_then(Value::as_array).into_iter().flatten() {
        if let Some(r) = e.get("resource") {
            n += count(r, depth + 1, types);
        } else if e.pointer("/request/method").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("DELETE")) {
            let url = e.pointer("/request/url").and_then(Value::as_str).unwrap_or("");
            let ty = url.split(['/', '?']).next().unwrap_or("").to_string();
            *types.entry(ty).or_default() += 1;
            n += 1;
        }
    }
    n
}

struct Independent {
    records: u64,
    resources: u64,
    types: BTreeMap<String, u64>,
}

fn independent(folder: &Path) -> Independent {
    let mut out = Independent { records: 0, resources: 0, types: BTreeMap::new() };
    let mut files: Vec<_> = walkdir(folder);
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus file readable");
        let docs: Vec<&str> = if f.extension().is_some_and(|e| e == "ndjson") {
            text.lines().filter(|l| !l.trim().is_empty()).collect()
        } else if f.extension().is_some_and(|e| e == "json") {
            vec![text.as_str()]
        } else {
            vec![]
        };
        for d in docs {
            out.records += 1;
            let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
            out.resources += count(&v, 1, &mut out.types);
        }
    }
    out
}

fn walkdir(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).expect("corpus folder readable") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            v.extend(walkdir(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// One rejected resource as the tables name it: (file relative to the corpus, entry, type, reason).
type Row = (String, String, String, String);

struct Replayed {
    tally: Tally,
    types: BTreeMap<String, u64>,
    rejected: BTreeSet<Row>,
    /// Rejected Observation/Condition/ImagingStudy with the record's raw text, for checking the reason.
    raw_of: BTreeMap<Row, String>,
}

fn replay_folder(name: &str) -> Replayed {
    let root = corpus();
    let engine = engine();
    let inputs = expand(&[root.join(name)]).expect("corpus folder expands");
    let mut states = States::new();
    let mut out = Replayed { tally: Tally::default(), types: BTreeMap::new(), rejected: BTreeSet::new(), raw_of: BTreeMap::new() };
    for_each_record(
        &inputs,
        |rec| {
            out.tally.records += 1;
            let report = engine.process(&mut states, &rec.bytes, None, None);
            let rel = Path::new(&rec.source).strip_prefix(&root).expect("source under corpus").display().to_string();
            for r in &report.resources {
                out.tally.count(&r.outcome);
                *out.types.entry(r.resource_type.clone().unwrap_or_else(|| "(none)".into())).or_default() += 1;
                if let Outcome::Rejected(reason, _) = &r.outcome {
                    let entry = match (&r.entry, rec.line) {
                        (Some(e), _) => e.clone(),
                        (None, Some(l)) if rel.ends_with(".ndjson") => format!("line:{l}"),
                        (None, _) => "-".into(),
                    };
                    let row = (rel.clone(), entry, r.resource_type.clone().unwrap_or_default(), reason.code().to_string());
                    out.raw_of.insert(row.clone(), String::from_utf8_lossy(&rec.bytes).into_owned());
                    out.rejected.insert(row);
                }
            }
        },
        |_| {},
    )
    .expect("corpus readable");
    out
}

fn table(path: &str) -> BTreeSet<Row> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("table readable");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t") && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            // mitre table: file, entry, type, id, reason, why; corpus table: file, entry, type, reason, why.
            let reason = if c.len() >= 6 { c[4] } else { c[3] };
            (c[0].to_string(), c[1].to_string(), c[2].to_string(), reason.to_string())
        })
        .collect()
}

#[test]
fn every_folder_balances_and_matches_an_independent_count() {
    for name in FOLDERS {
        let want = independent(&corpus().join(name));
        let got = replay_folder(name);
        assert!(got.tally.balances(), "{name}: accounting identity");
        assert!(got.tally.resources > 0, "{name}: no resources read");
        assert_eq!(got.tally.records, want.records, "{name}: records");
        assert_eq!(got.tally.resources, want.resources, "{name}: resources");
        for t in READ_TYPES {
            assert_eq!(got.types.get(t), want.types.get(t), "{name}: {t} count");
        }
        let other_got: u64 = got.types.iter().filter(|(k, _)| !READ_TYPES.contains(&k.as_str())).map(|(_, v)| v).sum();
        let other_want: u64 = want.types.iter().filter(|(k, _)| !READ_TYPES.contains(&k.as_str())).map(|(_, v)| v).sum();
        assert_eq!(other_got, other_want, "{name}: other resource types");
    }
}

#[test]
fn clinical_examples_reject_only_the_resources_named_in_the_table() {
    let expected = table("tests/data/corpus_expected_rejects.tsv");
    let mut got = BTreeSet::new();
    for name in ["synthea-r4-sample", "mcode-stu1-examples", "hl7-r4-examples", "us-core-examples"] {
        let r = replay_folder(name);
        for row in &r.rejected {
            if ["Observation", "Condition", "ImagingStudy"].contains(&row.2.as_str()) {
                got.insert(row.clone());
                // Check the stated reason on the raw JSON of that entry, independently of the decoder.
                let raw: Value = serde_json::from_str(&r.raw_of[row]).expect("json");
                let res = if row.1 == "-" { raw.clone() } else { entry_at(&raw, &row.1) };
                match row.3.as_str() {
                    "no_event_time" => {
                        let keys: Vec<&String> = res.as_object().expect("object").keys().collect();
                        assert!(
                            !keys.iter().any(|k| k.starts_with("effective")
                                || *k == "issued"
                                || k.starts_with("onset")
                                || *k == "recordedDate"
                                || *k == "started"),
                            "{row:?}"
                        );
                    }
                    "no_patient" => assert!(res.get("subject").is_none(), "{row:?}"),
                    other => panic!("unexpected reason {other} for {row:?}"),
                }
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(got, expected, "rejected clinical resources differ from tests/data/corpus_expected_rejects.tsv");
}

fn entry_at(bundle: &Value, path: &str) -> Value {
    let mut v = bundle.clone();
    for i in path.split('/') {
        let i: usize = i.parse().expect("entry index");
        v = v["entry"][i]["resource"].clone();
    }
    v
}

#[test]
fn synthea_clinical_resources_are_never_rejected() {
    let r = replay_folder("synthea-r4-sample");
    assert_eq!(r.tally.rejected_total(), 0);
    assert!(r.tally.applied > 500, "applied {}", r.tally.applied);
}

#[test]
fn mitre_fixtures_reject_exactly_the_table() {
    let expected = table("tests/data/mitre_expected_rejects.tsv");
    let got = replay_folder("mitre-fixtures").rejected;
    assert!(expected.len() > 50);
    assert_eq!(got, expected, "mitre rejects differ from tests/data/mitre_expected_rejects.tsv");
}
