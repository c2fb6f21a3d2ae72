//! Decode rules of DESIGN.md on small records made in code: Bundle walking, patient resolution, time,
//! versions, units, reasons; and a property test that no input panics and every input balances.

mod common;

use common::engine;
use oncowatch::core::decode::{decode_record, DecodeOptions, Decoded};
use oncowatch::core::engine::States;
use oncowatch::core::event::Fact;
use oncowatch::core::identity::{EventTime, PatientKey};
use oncowatch::core::reason::{IgnoreReason, Outcome, RejectReason, Tally};
use proptest::prelude::*;
use serde_json::json;

fn decode(v: &serde_json::Value) -> Vec<Decoded> {
    let e = engine();
    decode_record(v.to_string().as_bytes(), &e.vocab, &DecodeOptions::default(), None).into_iter().map(|d| d.decoded).collect()
}

fn obs(code: &str, subject: &str, value: serde_json::Value) -> serde_json::Value {
    let mut o = json!({
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject}, "effectiveDateTime": "2021-05-03"
    });
    if let (Some(m), Some(v)) = (o.as_object_mut(), value.as_object()) {
        for (k, x) in v {
            m.insert(k.clone(), x.clone());
        }
    }
    o
}

fn event(d: &Decoded) -> &oncowatch::core::event::ClinicalEvent {
    match d {
        Decoded::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn calcium_in_mmol_per_l_is_converted_to_mg_per_dl() {
    let v = obs(
        "17861-6",
        "Patient/p1",
        json!({"valueQuantity": {"value": 2.5, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}),
    );
    let d = decode(&v);
    match &event(&d[0]).fact {
        Fact::Measurement { value, .. } => assert!((value - 10.02).abs() < 1e-9, "{value}"),
        f => panic!("{f:?}"),
    }
}

#[test]
fn unknown_unit_is_ignored_not_guessed() {
    let v = obs("17861-6", "Patient/p1", json!({"valueQuantity": {"value": 2.5, "unit": "mEq/L"}}));
    assert!(matches!(&decode(&v)[0], Decoded::Ignored(IgnoreReason::UnconvertibleUnit, m) if m.contains("mEq/L")));
}

#[test]
fn absolute_and_history_references_give_one_key() {
    for r in ["Patient/p1", "https://fhir.example.org/r4/Patient/p1", "Patient/p1/_history/3"] {
        let v = obs("2039-6", r, json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
        assert_eq!(event(&decode(&v)[0]).patient, PatientKey::from_id("p1"), "{r}");
    }
}

#[test]
fn group_subject_is_ignored_and_missing_subject_rejected() {
    let v = obs("2039-6", "Group/g1", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    assert!(matches!(decode(&v)[0], Decoded::Ignored(IgnoreReason::SubjectNotPatient, _)));
    let mut v = obs("2039-6", "Patient/p1", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    v.as_object_mut().map(|m| m.remove("subject"));
    assert!(matches!(decode(&v)[0], Decoded::Rejected(RejectReason::NoPatient, _)));
}

#[test]
fn urn_uuid_resolves_through_full_url_and_identifier_through_the_bundle() {
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aaa", "resource": obs("2039-6", "urn:uuid:ppp", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}))},
        {"fullUrl": "urn:uuid:ppp", "resource": {"resourceType": "Patient", "id": "real-id",
            "identifier": [{"system": "urn:mrn", "value": "M1"}], "birthDate": "1960"}},
        {"resource": {"resourceType": "Condition", "id": "c1", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "93761005"}]},
            "subject": {"identifier": {"system": "urn:mrn", "value": "M1"}}, "onsetDateTime": "2020-01-02"}}
    ]});
    let d = decode(&b);
    assert_eq!(d.len(), 3);
    let want = PatientKey::from_id("real-id");
    assert_eq!(event(&d[0]).patient, want);
    assert_eq!(event(&d[1]).patient, want);
    assert_eq!(event(&d[2]).patient, want);
    assert_eq!(event(&d[1]).fact, Fact::Demographics { birth: Some(EventTime::from_ymd(1960, 1, 1)), female: None, deceased: false });
}

#[test]
fn identifier_reference_without_a_bundle_patient_keys_by_identifier() {
    let mut v = obs("2039-6", "x", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    v["subject"] = json!({"identifier": {"system": "urn:mrn", "value": "M9"}});
    assert_eq!(event(&decode(&v)[0]).patient.as_str(), "Patient?identifier=urn:mrn|M9");
}

#[test]
fn delete_entries_count_and_get_the_bundles_single_patient() {
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs("2039-6", "Patient/p1", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}))},
        {"request": {"method": "DELETE", "url": "Observation/o9"}},
        {"request": {"method": "GET", "url": "Observation/o9"}}
    ]});
    let d = decode(&b);
    assert_eq!(d.len(), 2, "a GET entry is not a resource");
    let del = event(&d[1]);
    assert_eq!(del.fact, Fact::Retraction);
    assert_eq!(del.patient, PatientKey::from_id("p1"));
}

#[test]
fn nested_bundles_deeper_than_four_are_one_rejected_resource() {
    let mut inner = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": obs("2039-6", "Patient/p1", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}}))},
        {"resource": obs("2039-6", "Patient/p1", json!({"id": "o2", "valueQuantity": {"value": 3.0, "unit": "ng/mL"}}))}
    ]});
    // Depth 4 is read: three wrappers around the inner Bundle.
    for _ in 0..3 {
        inner = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]});
    }
    assert_eq!(decode(&inner).len(), 2);
    let deeper = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]});
    let d = decode(&deeper);
    assert_eq!(d.len(), 1);
    assert!(matches!(d[0], Decoded::Rejected(RejectReason::TooDeep, _)));
}

#[test]
fn one_bad_entry_rejects_only_itself() {
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": obs("2039-6", "Patient/p1", json!({"status": "bogus"}))},
        {"resource": obs("2039-6", "Patient/p1", json!({"id": "o2", "valueQuantity": {"value": 3.0, "unit": "ng/mL"}}))},
        {"resource": {"resourceType": "Claim", "id": "x"}}
    ]});
    let d = decode(&b);
    assert!(matches!(&d[0], Decoded::Rejected(RejectReason::InvalidFhir, m) if m.contains("Observation.status")), "{:?}", d[0]);
    assert!(matches!(d[1], Decoded::Event(_)));
    assert!(matches!(d[2], Decoded::Ignored(IgnoreReason::UnsupportedResource, _)));
}

#[test]
fn malformed_date_is_invalid_fhir_naming_the_field() {
    let v = obs("2039-6", "Patient/p1", json!({"effectiveDateTime": "2021-13-45", "valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    assert!(matches!(&decode(&v)[0], Decoded::Rejected(RejectReason::InvalidFhir, m) if m.contains("effectiveDateTime")));
}

#[test]
fn record_level_rejections() {
    let e = engine();
    let opts = DecodeOptions { max_record_bytes: 10 };
    let d = decode_record(b"{\"resourceType\":\"Patient\"}", &e.vocab, &opts, None);
    assert!(matches!(d[0].decoded, Decoded::Rejected(RejectReason::TooLarge, _)));
    let d = decode_record(b"{not json", &e.vocab, &DecodeOptions::default(), None);
    assert!(matches!(d[0].decoded, Decoded::Rejected(RejectReason::InvalidJson, _)));
    let d = decode_record(b"[1,2]", &e.vocab, &DecodeOptions::default(), None);
    assert!(matches!(d[0].decoded, Decoded::Rejected(RejectReason::InvalidFhir, _)));
    let d = decode_record(b"{\"a\":1}", &e.vocab, &DecodeOptions::default(), None);
    assert!(matches!(d[0].decoded, Decoded::Rejected(RejectReason::InvalidFhir, _)));
}

#[test]
fn versions_duplicates_and_stale_are_counted_by_the_engine() {
    let e = engine();
    let mut states = States::new();
    let v2 = obs("2039-6", "Patient/p1", json!({"meta": {"versionId": "2"}, "valueQuantity": {"value": 9.0, "unit": "ng/mL"}}));
    let v1 = obs("2039-6", "Patient/p1", json!({"meta": {"versionId": "1"}, "valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    let outcomes: Vec<Outcome> =
        [&v2, &v2, &v1].iter().map(|v| e.process(&mut states, v.to_string().as_bytes(), None, None).resources[0].outcome.clone()).collect();
    assert_eq!(outcomes[0], Outcome::Applied);
    assert!(matches!(outcomes[1], Outcome::Ignored(IgnoreReason::Duplicate, _)));
    assert!(matches!(outcomes[2], Outcome::Ignored(IgnoreReason::StaleVersion, _)));
}

#[test]
fn entered_in_error_first_leaves_a_tombstone() {
    let e = engine();
    let mut states = States::new();
    let retract = obs("2039-6", "Patient/p1", json!({"status": "entered-in-error", "meta": {"versionId": "2"}}));
    let original = obs("2039-6", "Patient/p1", json!({"meta": {"versionId": "1"}, "valueQuantity": {"value": 3.0, "unit": "ng/mL"}}));
    assert_eq!(e.process(&mut states, retract.to_string().as_bytes(), None, None).resources[0].outcome, Outcome::Applied);
    let late = e.process(&mut states, original.to_string().as_bytes(), None, None);
    assert!(matches!(late.resources[0].outcome, Outcome::Ignored(IgnoreReason::StaleVersion, _)));
    assert!(states[&PatientKey::from_id("p1")].points().is_empty());
}

fn valid_resources() -> Vec<String> {
    vec![
        obs("2039-6", "Patient/p1", json!({"valueQuantity": {"value": 3.0, "unit": "ng/mL"}})).to_string(),
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1950-02-03"}},
            {"resource": {"resourceType": "Condition", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "93761005"}]},
             "subject": {"reference": "urn:uuid:p"}, "onsetDateTime": "2020-01-02T10:00:00Z"}},
            {"resource": {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": "urn:uuid:p"},
             "started": "2020-02-02", "series": [{"uid": "1.2", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}}]}},
            {"request": {"method": "DELETE", "url": "Observation/x"}}
        ]})
        .to_string(),
    ]
}

fn tally_of(bytes: &[u8]) -> Tally {
    let e = engine();
    let mut states = States::new();
    let mut t = Tally::default();
    for r in e.process(&mut states, bytes, None, None).resources {
        t.count(&r.outcome);
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_balance(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let t = tally_of(&bytes);
        prop_assert!(t.balances());
        prop_assert!(t.resources >= 1);
    }

    #[test]
    fn mutated_valid_resources_never_panic_and_balance(which in 0usize..2, cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = valid_resources()[which].clone().into_bytes();
        for (i, b) in cuts {
            let at = i.index(bytes.len());
            // Mutations: overwrite, delete or duplicate a byte.
            match b % 3 {
                0 => bytes[at] = b,
                1 => { bytes.remove(at); }
                _ => { let c = bytes[at]; bytes.insert(at, c); }
            }
            if bytes.is_empty() { break; }
        }
        let t = tally_of(&bytes);
        prop_assert!(t.balances());
    }
}
