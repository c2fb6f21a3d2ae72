//! FHIR R4 JSON for the simulated stories: the Patient, one Observation / Condition / ImagingStudy per event,
//! the delivery faults (late, duplicate, amended, entered-in-error versions), and the per-patient Bundles.
//! Pure: no IO.

use super::cohort::{Coded, Event, Fact, Modality, Sex, Story, STREAM_FAULTS};
use super::rng::Rng;
use crate::core::identity::{fnv1a, EventTime, MS_PER_DAY};
use serde_json::{json, Map, Value};

pub const UCUM: &str = "http://unitsofmeasure.org";
pub const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
pub const AJCC: &str = "http://cancerstaging.org";
pub const MRN_SYSTEM: &str = "urn:oncowatch:synthetic-mrn";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const COND_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const COND_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const COND_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";

/// Fractions of resources that get each delivery fault (0 to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Delivered weeks to months after its event time.
    pub late: f64,
    /// Delivered again later, byte for byte.
    pub duplicates: f64,
    /// A second version (`meta.versionId` "2") with a slightly changed value follows.
    pub amended: f64,
    /// A second version marked entered-in-error follows.
    pub entered_in_error: f64,
}

/// Which fault produced a delivered resource (`None`: the original, on time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Late,
    Duplicate,
    Amended,
    EnteredInError,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Late => "late",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Amended => "amended",
            FaultKind::EnteredInError => "entered_in_error",
        }
    }
}

/// One resource as delivered: when, what, and which fault (if any) put it there.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub at: EventTime,
    pub resource: Value,
    pub fault: Option<FaultKind>,
}

fn coding(c: &Coded) -> Value {
    json!({"system": c.system, "code": c.code, "display": c.display})
}

fn subject(story: &Story) -> Value {
    json!({"reference": format!("Patient/{}", story.id)})
}

fn meta(version: &str) -> Value {
    json!({"versionId": version})
}

/// The Patient resource.
pub fn patient(story: &Story) -> Value {
    json!({
        "resourceType": "Patient",
        "id": story.id,
        "meta": {
            "versionId": "1",
            "tag": [{"system": "urn:oncowatch:generated", "code": "synthetic", "display": "Synthetic data from oncowatch generate"}]
        },
        "identifier": [{"system": MRN_SYSTEM, "value": format!("SYN-{}", story.id.trim_start_matches("gen-"))}],
        "name": [{"use": "official", "family": "Synthetic", "given": [format!("Patient {}", story.n)]}],
        "gender": match story.sex { Sex::Female => "female", Sex::Male => "male" },
        "birthDate": story.birth.to_date(),
    })
}

fn number(value: f64, decimals: u8) -> Value {
    if decimals == 0 {
        Value::from(value.round() as i64)
    } else {
        let p = 10f64.powi(i32::from(decimals));
        let v = (value * p).round() / p;
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

fn obs_category(code: &str) -> Value {
    let display = match code {
        "laboratory" => "Laboratory",
        "vital-signs" => "Vital Signs",
        "survey" => "Survey",
        _ => "Exam",
    };
    json!([{"coding": [{"system": OBS_CATEGORY, "code": code, "display": display}]}])
}

fn ecog_answer(score: u8) -> (&'static str, &'static str) {
    match score {
        0 => ("LA9622-7", "Fully active, able to carry on all pre-disease performance without restriction"),
        1 => ("LA9623-5", "Restricted in physically strenuous activity but ambulatory and able to carry out work of a light or sedentary nature, e.g., light house work, office work"),
        2 => ("LA9624-3", "Ambulatory and capable of all selfcare but unable to carry out any work activities. Up and about more than 50% of waking hours"),
        3 => ("LA9625-0", "Capable of only limited selfcare, confined to bed or chair more than 50% of waking hours"),
        4 => ("LA9626-8", "Completely disabled. Cannot carry on any selfcare. Totally confined to bed or chair"),
        _ => ("LA9627-6", "Dead"),
    }
}

fn observation(story: &Story, id: &str, e: &Event, category: &str, code: Value, value_key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert("resourceType".into(), "Observation".into());
    m.insert("id".into(), id.into());
    m.insert("meta".into(), meta("1"));
    m.insert("status".into(), "final".into());
    m.insert("category".into(), obs_category(category));
    m.insert("code".into(), code);
    m.insert("subject".into(), subject(story));
    m.insert("effectiveDateTime".into(), e.time.to_rfc3339().into());
    m.insert("issued".into(), e.delivered.to_rfc3339().into());
    m.insert(value_key.into(), value);
    Value::Object(m)
}

fn condition(story: &Story, id: &str, e: &Event, code: &Coded, category: &str) -> Value {
    let cat_display = if category == "problem-list-item" { "Problem List Item" } else { "Encounter Diagnosis" };
    json!({
        "resourceType": "Condition",
        "id": id,
        "meta": meta("1"),
        "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": "active", "display": "Active"}]},
        "verificationStatus": {"coding": [{"system": COND_VERIFICATION, "code": "confirmed", "display": "Confirmed"}]},
        "category": [{"coding": [{"system": COND_CATEGORY, "code": category, "display": cat_display}]}],
        "code": {"coding": [coding(code)], "text": code.display},
        "subject": subject(story),
        "onsetDateTime": e.time.to_rfc3339(),
        "recordedDate": e.delivered.to_date(),
    })
}

fn dicom_uid(seed_part: u64, id: &str) -> String {
    let h = fnv1a(&[&seed_part.to_le_bytes(), id.as_bytes()]);
    let mut s = h;
    format!("2.25.{}", super::rng::splitmix64(&mut s))
}

fn imaging(story: &Story, id: &str, e: &Event, modality: Modality, description: &str, instances: u32) -> Value {
    let m = json!({"system": DICOM, "code": modality.code(), "display": modality.display()});
    json!({
        "resourceType": "ImagingStudy",
        "id": id,
        "meta": meta("1"),
        "status": "available",
        "modality": [m],
        "subject": subject(story),
        "started": e.time.to_rfc3339(),
        "numberOfSeries": 1,
        "numberOfInstances": instances,
        "description": description,
        "series": [{
            "uid": dicom_uid(story.n, id),
            "number": 1,
            "modality": m,
            "numberOfInstances": instances,
        }],
    })
}

/// The resource of one event, with the id given.
pub fn event_resource(story: &Story, id: &str, e: &Event) -> Value {
    match &e.fact {
        Fact::Diagnosis(c) | Fact::Metastasis(c) => condition(story, id, e, c, "problem-list-item"),
        Fact::Finding(c) => condition(story, id, e, c, "encounter-diagnosis"),
        Fact::Stage { loinc, display, ajcc, text } => {
            let code = json!({"coding": [{"system": super::cohort::LOINC, "code": loinc, "display": display}]});
            let value = match ajcc {
                Some(a) => json!({"coding": [{"system": AJCC, "code": a}], "text": text}),
                None => json!({"text": text}),
            };
            observation(story, id, e, "exam", code, "valueCodeableConcept", value)
        }
        Fact::Measure { value, report, .. } => {
            let code = json!({"coding": [{"system": super::cohort::LOINC, "code": report.loinc, "display": report.display}]});
            let shown = value / report.unit.factor;
            let q = json!({
                "value": number(shown, report.unit.decimals),
                "unit": report.unit.text,
                "system": UCUM,
                "code": report.unit.code,
            });
            let cat = if report.vital { "vital-signs" } else { "laboratory" };
            observation(story, id, e, cat, code, "valueQuantity", q)
        }
        Fact::Ecog { score, as_answer } => {
            let code = json!({"coding": [{"system": super::cohort::LOINC, "code": "89247-1", "display": "ECOG Performance Status score"}]});
            if *as_answer {
                let (c, d) = ecog_answer(*score);
                let v = json!({"coding": [{"system": super::cohort::LOINC, "code": c, "display": d}]});
                observation(story, id, e, "survey", code, "valueCodeableConcept", v)
            } else {
                observation(story, id, e, "survey", code, "valueInteger", Value::from(*score))
            }
        }
        Fact::Imaging { modality, description, instances } => imaging(story, id, e, *modality, description, *instances),
    }
}

/// Whether an entered-in-error version may be made of this event (never of the diagnosis or the
/// metastasis, whose retraction would change the truth).
fn may_retract(f: &Fact) -> bool {
    !matches!(f, Fact::Diagnosis(_) | Fact::Metastasis(_))
}

fn set_version(r: &mut Value, v: &str) {
    if let Some(m) = r.get_mut("meta").and_then(Value::as_object_mut) {
        m.insert("versionId".into(), v.into());
    }
}

/// The entered-in-error version of a resource.
fn retracted(original: &Value) -> Value {
    let mut r = original.clone();
    set_version(&mut r, "2");
    if let Some(m) = r.as_object_mut() {
        match m.get("resourceType").and_then(Value::as_str) {
            Some("Condition") => {
                // con-3: no clinicalStatus when the verification status is entered-in-error.
                m.remove("clinicalStatus");
                m.insert(
                    "verificationStatus".into(),
                    json!({"coding": [{"system": COND_VERIFICATION, "code": "entered-in-error", "display": "Entered in Error"}]}),
                );
            }
            _ => {
                m.insert("status".into(), "entered-in-error".into());
            }
        }
    }
    r
}

/// The amended version: a Quantity value changed by 2-8 %, otherwise a corrective note.
fn amended(original: &Value, rng: &mut Rng) -> Value {
    let mut r = original.clone();
    set_version(&mut r, "2");
    let change = rng.uniform(0.02, 0.08) * if rng.chance(0.5) { 1.0 } else { -1.0 };
    let Some(m) = r.as_object_mut() else {
        return r;
    };
    let is_obs = m.get("resourceType").and_then(Value::as_str) == Some("Observation");
    if is_obs {
        m.insert("status".into(), "amended".into());
    }
    let quantity = m.get_mut("valueQuantity").and_then(|q| q.get_mut("value"));
    match quantity {
        Some(v) => {
            let new = if let Some(i) = v.as_i64() {
                let delta = ((i as f64 * change).round() as i64).max(1);
                Value::from(if change > 0.0 { i + delta } else { (i - delta).max(1) })
            } else {
                let x = v.as_f64().unwrap_or(0.0);
                let decimals = v.to_string().split_once('.').map_or(0, |(_, d)| d.len().min(4) as u8);
                let p = 10f64.powi(i32::from(decimals));
                let mut y = ((x * (1.0 + change)) * p).round() / p;
                if y == x {
                    y = x + 1.0 / p;
                }
                number(y.max(1.0 / p), decimals)
            };
            *v = new;
        }
        None => {
            m.insert("note".into(), json!([{"text": "Amended: corrected report"}]));
        }
    }
    r
}

/// The resources of a story as delivered, faults included, in delivery order.
pub fn deliver(story: &Story, seed: u64, faults: &Faults) -> Vec<Delivered> {
    let mut rng = Rng::stream(&[seed, story.n, STREAM_FAULTS]);
    let mut out: Vec<Delivered> = Vec::with_capacity(story.events.len() + 8);
    let patient = patient(story);
    // Every resource draws the same numbers whatever the fractions, so changing one fraction does not
    // reshuffle the others' choices.
    let u_dup = rng.f64();
    let dup_lag = rng.uniform(1.0, 30.0);
    out.push(Delivered { at: story.registered, resource: patient.clone(), fault: None });
    if u_dup < faults.duplicates {
        out.push(Delivered {
            at: EventTime(story.registered.0 + (dup_lag * MS_PER_DAY as f64) as i64),
            resource: patient,
            fault: Some(FaultKind::Duplicate),
        });
    }
    let (mut o, mut c, mut i) = (0u32, 0u32, 0u32);
    for e in &story.events {
        let id = match e.fact {
            Fact::Diagnosis(_) | Fact::Metastasis(_) | Fact::Finding(_) => {
                c += 1;
                format!("{}-c{c}", story.id)
            }
            Fact::Imaging { .. } => {
                i += 1;
                format!("{}-i{i}", story.id)
            }
            _ => {
                o += 1;
                format!("{}-o{o}", story.id)
            }
        };
        let resource = event_resource(story, &id, e);
        let (u_late, u_dup, u_amend, u_eie) = (rng.f64(), rng.f64(), rng.f64(), rng.f64());
        let late_days = rng.uniform(14.0, 180.0);
        let dup_days = rng.uniform(1.0 / 24.0, 30.0);
        let v2_days = rng.uniform(1.0 / 24.0, 60.0);
        let day = |d: f64| (d * MS_PER_DAY as f64) as i64;
        let mut at = e.delivered;
        let mut fault = None;
        if u_late < faults.late {
            at = EventTime(at.0.max(e.time.0 + day(late_days)));
            fault = Some(FaultKind::Late);
        }
        if u_dup < faults.duplicates {
            out.push(Delivered { at: EventTime(at.0 + day(dup_days)), resource: resource.clone(), fault: Some(FaultKind::Duplicate) });
        }
        if u_eie < faults.entered_in_error && may_retract(&e.fact) {
            out.push(Delivered {
                at: EventTime(at.0 + day(v2_days)),
                resource: retracted(&resource),
                fault: Some(FaultKind::EnteredInError),
            });
        } else if u_amend < faults.amended {
            out.push(Delivered {
                at: EventTime(at.0 + day(v2_days)),
                resource: amended(&resource, &mut rng),
                fault: Some(FaultKind::Amended),
            });
        }
        out.push(Delivered { at, resource, fault });
    }
    // Delivery order; equal times keep generation order (the original before its copies is not
    // guaranteed by position, so copies were given strictly later times above).
    out.sort_by_key(|d| d.at);
    out
}

/// A deterministic UUID (version 4 layout) for a resource of a cohort.
pub fn uuid_for(seed: u64, resource_type: &str, id: &str) -> String {
    let mut s = fnv1a(&[&seed.to_le_bytes(), resource_type.as_bytes(), b"/", id.as_bytes()]);
    let hi = super::rng::splitmix64(&mut s);
    let lo = super::rng::splitmix64(&mut s);
    let hi = (hi & !0xF000) | 0x4000; // version 4
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48, lo & 0xFFFF_FFFF_FFFF)
}

fn type_and_id(r: &Value) -> (&str, &str) {
    (r.get("resourceType").and_then(Value::as_str).unwrap_or(""), r.get("id").and_then(Value::as_str).unwrap_or(""))
}

/// The per-patient Bundles: a transaction with every first version (in delivery order, references by
/// `urn:uuid`), and, when faults produced copies or second versions, a batch of those (references by
/// `Patient/<id>`, since a batch entry cannot point into another Bundle).
pub fn bundles(seed: u64, patient_id: &str, delivered: &[Delivered]) -> (Value, Option<Value>) {
    let patient_urn = format!("urn:uuid:{}", uuid_for(seed, "Patient", patient_id));
    let patient_ref = format!("Patient/{patient_id}");
    let mut main = Vec::new();
    let mut extra = Vec::new();
    for d in delivered {
        let (rt, id) = type_and_id(&d.resource);
        let request = json!({"method": "PUT", "url": format!("{rt}/{id}")});
        match d.fault {
            None | Some(FaultKind::Late) => {
                let mut r = d.resource.clone();
                if let Some(s) = r.get_mut("subject").and_then(Value::as_object_mut) {
                    if s.get("reference").and_then(Value::as_str) == Some(patient_ref.as_str()) {
                        s.insert("reference".into(), patient_urn.clone().into());
                    }
                }
                main.push(json!({
                    "fullUrl": format!("urn:uuid:{}", uuid_for(seed, rt, id)),
                    "resource": r,
                    "request": request,
                }));
            }
            Some(_) => extra.push(json!({"resource": d.resource, "request": request})),
        }
    }
    let tx = json!({
        "resourceType": "Bundle",
        "id": format!("{patient_id}-transaction"),
        "type": "transaction",
        "entry": main,
    });
    let batch = (!extra.is_empty()).then(|| {
        json!({
            "resourceType": "Bundle",
            "id": format!("{patient_id}-corrections"),
            "type": "batch",
            "entry": extra,
        })
    });
    (tx, batch)
}
