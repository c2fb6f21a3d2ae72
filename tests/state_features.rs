//! PatientState and features: idempotence, amendments, retractions (also before the original), order
//! independence, bounds, the binary encoding (with a committed sample), finite features, and replay's
//! features against a hand-made table of the corpus's cancer patients.

mod common;

use common::{corpus, engine};
use oncowatch::core::event::{ClinicalEvent, Fact};
use oncowatch::core::features::{compute, FeatureVector, NAMES};
use oncowatch::core::identity::{EventTime, PatientKey, ResourceId, ResourceKind, ResourceVersion};
use oncowatch::core::reason::IgnoreReason;
use oncowatch::core::state::{ApplyResult, PatientState};
use oncowatch::core::vocabulary::{FindingGroup, ImagingGroup, SeriesId, Site, StageAxis, Vocabulary};
use oncowatch::drivers::replay::{replay, ReplayOptions};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn vocab() -> Vocabulary {
    Vocabulary::builtin().expect("vocabulary")
}

fn key() -> PatientKey {
    PatientKey::from_id("p1")
}

fn ev(id: &str, version: &str, day: i64, fact: Fact) -> ClinicalEvent {
    ClinicalEvent {
        patient: key(),
        resource: ResourceId { kind: ResourceKind::Observation, id: id.into() },
        version: ResourceVersion::Id(version.into()),
        time: Some(EventTime::from_ymd(2021, 1, 1).plus_days(day)),
        fact,
    }
}

fn cond(id: &str, day: i64, fact: Fact) -> ClinicalEvent {
    ClinicalEvent { resource: ResourceId { kind: ResourceKind::Condition, id: id.into() }, ..ev(id, "1", day, fact) }
}

fn series(v: &Vocabulary, key: &str) -> SeriesId {
    v.series_by_key(key).expect("series")
}

fn base_events(v: &Vocabulary) -> Vec<ClinicalEvent> {
    let cea = series(v, "cea");
    let mut out = vec![
        ClinicalEvent {
            resource: ResourceId { kind: ResourceKind::Patient, id: "p1".into() },
            time: None,
            fact: Fact::Demographics { birth: Some(EventTime::from_ymd(1960, 3, 1)), female: Some(true), deceased: false },
            ..ev("p1", "1", 0, Fact::Retraction)
        },
        cond("c1", 0, Fact::Primary(Site::Colorectal)),
        ev("st", "1", 1, Fact::Stage { axis: StageAxis::Group, value: 3 }),
    ];
    for i in 0..8 {
        out.push(ev(&format!("cea{i}"), "1", 30 * i, Fact::Measurement { series: cea, value: 2.0 + i as f64, comparator: None }));
    }
    out.push(ev("img", "1", 200, Fact::Imaging(vec![ImagingGroup::PetNm])));
    out.push(cond("f1", 205, Fact::Finding(FindingGroup::Bone)));
    out
}

fn build(events: &[ClinicalEvent]) -> PatientState {
    let mut s = PatientState::new(key());
    for e in events {
        s.apply(e);
    }
    s
}

#[test]
fn the_same_version_twice_changes_nothing() {
    let v = vocab();
    let events = base_events(&v);
    let once = build(&events);
    let mut twice = once.clone();
    let mut duplicates = 0;
    for e in &events {
        // Points already dropped by the bounds cannot be told from new old points: they only touch the
        // summaries (a minimum), which is idempotent too.
        if twice.apply(e) == ApplyResult::Ignored(IgnoreReason::Duplicate) {
            duplicates += 1;
        }
    }
    assert_eq!(once, twice);
    assert_eq!(duplicates, events.len() - 2, "all but the two CEA points dropped by the bounds report duplicate");
}

#[test]
fn a_newer_version_replaces_an_amended_value() {
    let v = vocab();
    let cea = series(&v, "cea");
    let mut events = base_events(&v);
    events.push(ev("cea7", "2", 210, Fact::Measurement { series: cea, value: 40.0, comparator: None }));
    let s = build(&events);
    let fv = compute(&s, &v, s.latest.expect("latest"));
    assert_eq!(fv.get("marker_last_uln"), Some(40.0 / 5.0));
    let old_after = {
        let mut e = events.clone();
        let amended = e.pop().expect("amended");
        e.insert(0, amended);
        build(&e)
    };
    assert_eq!(compute(&old_after, &v, s.latest.expect("latest")), fv, "the older version arriving later is stale");
}

#[test]
fn a_retraction_removes_the_contribution_also_when_it_arrives_first() {
    let v = vocab();
    let mut events = base_events(&v);
    let retract = ev("img", "2", 200, Fact::Retraction);
    let without = build(&events);
    assert_eq!(compute(&without, &v, without.latest.expect("t")).get("pet_nm_studies_90d"), Some(1.0));
    events.push(retract.clone());
    let after = build(&events);
    let t = after.latest.expect("t");
    assert_eq!(compute(&after, &v, t).get("pet_nm_studies_90d"), Some(0.0));
    let mut first = vec![retract];
    first.extend(base_events(&v));
    let before = build(&first);
    assert_eq!(compute(&before, &v, t), compute(&after, &v, t));
}

#[test]
fn ten_thousand_events_stay_bounded() {
    let v = vocab();
    let ids: Vec<SeriesId> = (0..v.series.len() as u16).map(SeriesId).collect();
    let mut s = PatientState::new(key());
    s.apply(&cond("c1", 0, Fact::Primary(Site::Breast)));
    for i in 0..10_000i64 {
        let fact = match i % 4 {
            0 => Fact::Imaging(vec![ImagingGroup::CtMr]),
            1 => Fact::Finding(FindingGroup::Constitutional),
            _ => Fact::Measurement { series: ids[(i as usize) % ids.len()], value: (i % 97) as f64, comparator: None },
        };
        s.apply(&ev(&format!("o{i}"), "1", i / 3, fact));
    }
    let bytes = s.encode().len();
    assert!(s.points().len() <= 18 * 6 + 24 + 12 + 4 * 8, "points {}", s.points().len());
    assert!(bytes < 4096, "encoded state of 10,000 events is {bytes} bytes");
    assert_eq!(s.dropped_min(ids[2]), Some(0.0), "the minimum of dropped points is kept for nadirs");
}

#[test]
fn binary_encoding_round_trips_and_reads_the_committed_sample() {
    let v = vocab();
    let s = build(&base_events(&v));
    let bytes = s.encode();
    assert_eq!(PatientState::decode(&bytes).expect("decode"), s);
    let sample_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/patient_state_v1.bin");
    if std::env::var_os("ONCOWATCH_WRITE_SAMPLES").is_some() {
        std::fs::write(&sample_path, &bytes).expect("write sample");
    }
    let committed = std::fs::read(&sample_path).expect("tests/data/patient_state_v1.bin (write with ONCOWATCH_WRITE_SAMPLES=1)");
    assert_eq!(PatientState::decode(&committed).expect("committed sample decodes"), s, "format changed: bump STATE_FORMAT_VERSION");
    assert!(PatientState::decode(&bytes[..bytes.len() / 2]).is_err(), "truncated state is an error");
    let mut wrong = bytes.clone();
    wrong[0] = 99;
    assert!(PatientState::decode(&wrong).is_err());
}

fn all_finite(fv: &FeatureVector) -> bool {
    fv.values.iter().all(|v| v.is_none_or(f64::is_finite))
}

fn arb_fact(n_series: u16) -> impl Strategy<Value = Fact> {
    prop_oneof![
        (0..n_series, -1e6f64..1e6).prop_map(|(s, v)| Fact::Measurement { series: SeriesId(s), value: v, comparator: None }),
        (0u8..5).prop_map(|v| Fact::Stage { axis: StageAxis::Group, value: v }),
        (0u8..6).prop_map(Fact::Ecog),
        Just(Fact::Primary(Site::Lung)),
        Just(Fact::Primary(Site::Prostate)),
        Just(Fact::Finding(FindingGroup::Bone)),
        Just(Fact::Imaging(vec![ImagingGroup::PetNm, ImagingGroup::CtMr])),
        Just(Fact::Metastasis),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn features_are_always_finite_or_missing(facts in proptest::collection::vec((arb_fact(18), -400i64..400, 0u8..3), 0..80), as_of in -500i64..900) {
        let v = vocab();
        let mut s = PatientState::new(key());
        for (i, (f, day, ver)) in facts.into_iter().enumerate() {
            s.apply(&ev(&format!("r{}", i % 40), &ver.to_string(), day, f));
        }
        let fv = compute(&s, &v, EventTime::from_ymd(2021, 1, 1).plus_days(as_of));
        prop_assert!(all_finite(&fv));
        prop_assert_eq!(fv.values.len(), NAMES.len());
    }

    #[test]
    fn any_arrival_order_with_duplicates_gives_the_sorted_deduplicated_features(
        facts in proptest::collection::vec((arb_fact(18), 0i64..700), 1..60),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let v = vocab();
        let events: Vec<ClinicalEvent> = facts.into_iter().enumerate().map(|(i, (f, d))| ev(&format!("r{i}"), "1", d, f)).collect();
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.time);
        let reference = build(&sorted);
        let mut shuffled = events.clone();
        for d in &dups {
            shuffled.push(d.get(&events).clone());
        }
        // Deterministic shuffle from the drawn seed (Fisher-Yates with a SplitMix64 stream).
        let mut x = order;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            shuffled.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let got = build(&shuffled);
        let t = reference.latest.expect("latest");
        prop_assert_eq!(got.latest, reference.latest);
        prop_assert_eq!(compute(&got, &v, t), compute(&reference, &v, t));
    }
}

#[test]
fn replay_features_match_the_corpus_patient_table() {
    let root = corpus();
    let e = engine();
    let dir = std::env::temp_dir().join(format!("oncowatch-features-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("f.csv");
    let opts = ReplayOptions {
        inputs: vec![root.join("synthea-r4-sample"), root.join("mcode-stu1-examples")],
        features_out: Some(csv.clone()),
        ..ReplayOptions::default()
    };
    let out = replay(&e, &opts).expect("replay");
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(&header[..5], &["patient_hash", "as_of", "primary_site", "metastasis_confirmed", "eligible"]);
    assert_eq!(&header[5..], &NAMES[..]);
    let rows: BTreeMap<String, Vec<String>> = lines
        .map(|l| {
            let c: Vec<String> = l.split(',').map(str::to_string).collect();
            (c[0].clone(), c)
        })
        .collect();
    assert_eq!(rows.len(), out.states.len());
    let table =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus_patients.tsv")).expect("table");
    let mut checked = 0;
    for l in table.lines().filter(|l| !l.starts_with('#') && !l.starts_with("folder\t")) {
        let c: Vec<&str> = l.split('\t').collect();
        let hash = e.pseudonyms.pseudonym(&PatientKey::from_id(c[1])).to_string();
        let row = rows.get(&hash).unwrap_or_else(|| panic!("patient {} of the table not in replay's features", c[1]));
        assert_eq!(row[2], c[2], "primary site of {}", c[1]);
        assert_eq!(row[3], c[3], "metastasis of {}", c[1]);
        checked += 1;
    }
    assert_eq!(checked, 17);
    let summary = oncowatch::drivers::replay::summary(&out);
    assert_eq!(summary["patients"], 17);
    assert_eq!(summary["confirmed_metastasis"], 4);
}
