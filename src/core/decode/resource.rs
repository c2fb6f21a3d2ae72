//! Per-resource decoding: the typed facts of one Observation, Condition, ImagingStudy or Patient to a
//! `ClinicalEvent` or a reasoned ignore/reject. Order of checks (so a resource gets the most useful reason):
//! typed decode, vocabulary (not_relevant), status, patient, event time, value and unit.

use super::{Decoded, Identity, Subject};
use crate::core::event::{ClinicalEvent, Comparator, Fact};
use crate::core::identity::{parse_reference, EventTime, PatientKey, RefTarget, ResourceId, ResourceKind, ResourceVersion};
use crate::core::reason::{IgnoreReason, RejectReason};
use crate::core::vocabulary::{ConditionClass, ImagingGroup, ObservationClass, StageAxis, Vocabulary};
use oncowatch_fhir as fhir;

fn invalid(e: fhir::DecodeError) -> Decoded {
    Decoded::Rejected(RejectReason::InvalidFhir, e.to_string())
}

fn version(meta: &fhir::Meta) -> ResourceVersion {
    if let Some(v) = meta.version_id.as_ref().filter(|v| !v.is_empty()) {
        ResourceVersion::Id(v.clone())
    } else if let Some(t) = meta.last_updated {
        ResourceVersion::Updated(t.epoch_ms)
    } else {
        ResourceVersion::Arrival
    }
}

fn time(t: Option<fhir::Time>) -> Option<EventTime> {
    // i64::MIN marks a date the calendar cannot hold (year out of range).
    t.filter(|t| t.epoch_ms != i64::MIN).map(|t| EventTime(t.epoch_ms))
}

fn codes_of(c: &fhir::Concept) -> String {
    let list: Vec<String> =
        c.codings.iter().take(3).map(|k| format!("{}|{}", k.system.as_deref().unwrap_or(""), k.code.as_deref().unwrap_or(""))).collect();
    if list.is_empty() {
        "no coding".into()
    } else {
        list.join(", ")
    }
}

/// Resolves the subject, mapping a failure to its outcome.
fn patient_of(kind: &str, s: Subject) -> Result<PatientKey, Decoded> {
    match s {
        Subject::Patient(k) => Ok(k),
        Subject::NotPatient(t) => Err(Decoded::Ignored(IgnoreReason::SubjectNotPatient, format!("{kind}.subject is a {t}, not a Patient"))),
        Subject::Missing(why) => Err(Decoded::Rejected(RejectReason::NoPatient, format!("{kind}.subject: {why}"))),
    }
}

pub(super) fn observation(
    vocab: &Vocabulary,
    raw: &str,
    ident: &Identity<'_>,
    resolve: impl Fn(Option<&fhir::Reference>) -> Subject,
) -> Decoded {
    let o = match fhir::observation(raw) {
        Ok(o) => o,
        Err(e) => return invalid(e),
    };
    let class = o.code.codings.iter().find_map(|c| c.code.as_deref().and_then(|code| vocab.observation(c.system.as_deref(), code)));
    let Some(class) = class else {
        return Decoded::Ignored(IgnoreReason::NotRelevant, format!("Observation.code ({}) is not in the vocabulary", codes_of(&o.code)));
    };
    let retract = o.status == "entered-in-error";
    if matches!(o.status.as_str(), "registered" | "cancelled" | "unknown") {
        return Decoded::Ignored(IgnoreReason::StatusExcluded, format!("Observation.status is {}", o.status));
    }
    let patient = match patient_of("Observation", resolve(o.subject.as_ref())) {
        Ok(p) => p,
        Err(d) => return d,
    };
    let when = time(o.effective).or(time(o.issued));
    let resource = ResourceId { kind: ResourceKind::Observation, id: ident.id(o.id.as_deref()) };
    let version = version(&o.meta);
    if retract {
        return Decoded::Event(ClinicalEvent { patient, resource, version, time: when, fact: Fact::Retraction });
    }
    let Some(when) = when else {
        return Decoded::Rejected(
            RejectReason::NoEventTime,
            "Observation: none of effectiveDateTime, effectiveInstant, effectivePeriod, issued".into(),
        );
    };
    if o.data_absent {
        return Decoded::Ignored(IgnoreReason::NoValue, "Observation.dataAbsentReason is set".into());
    }
    let fact = match observation_fact(vocab, class, o.value.as_ref()) {
        Ok(f) => f,
        Err(d) => return d,
    };
    Decoded::Event(ClinicalEvent { patient, resource, version, time: Some(when), fact })
}

fn value_form(v: &fhir::Value) -> &'static str {
    match v {
        fhir::Value::Quantity(_) => "valueQuantity",
        fhir::Value::Integer(_) => "valueInteger",
        fhir::Value::Concept(_) => "valueCodeableConcept",
        fhir::Value::String(_) => "valueString",
        fhir::Value::Other(name) => name,
    }
}

fn observation_fact(vocab: &Vocabulary, class: ObservationClass, value: Option<&fhir::Value>) -> Result<Fact, Decoded> {
    let no_value = |msg: String| Decoded::Ignored(IgnoreReason::NoValue, msg);
    let Some(value) = value else {
        return Err(no_value("Observation has no value[x]".into()));
    };
    match class {
        ObservationClass::Series(series) => {
            let s = vocab.series(series);
            match value {
                fhir::Value::Quantity(q) => {
                    let Some(v) = q.value.filter(|v| v.is_finite()) else {
                        return Err(no_value("Observation.valueQuantity has no value".into()));
                    };
                    let Some(factor) = vocab.unit_factor(series, q.system.as_deref(), q.code.as_deref(), q.unit.as_deref()) else {
                        let shown = q.code.as_deref().or(q.unit.as_deref()).unwrap_or("(none)");
                        let msg = format!("Observation.valueQuantity unit {shown:?} is not convertible to {} for {}", s.unit, s.key);
                        return Err(Decoded::Ignored(IgnoreReason::UnconvertibleUnit, msg));
                    };
                    let comparator = q.comparator.as_deref().and_then(Comparator::parse);
                    Ok(Fact::Measurement { series, value: v * factor, comparator })
                }
                fhir::Value::Integer(_) => {
                    let msg = format!("Observation.valueInteger carries no unit; {} needs {}", s.key, s.unit);
                    Err(Decoded::Ignored(IgnoreReason::UnconvertibleUnit, msg))
                }
                other => Err(no_value(format!("{} is not read for {}", value_form(other), s.key))),
            }
        }
        ObservationClass::Ecog => {
            let score = match value {
                fhir::Value::Integer(i) => u8::try_from(*i).ok(),
                fhir::Value::Quantity(q) => q.value.filter(|v| v.fract() == 0.0 && (0.0..=5.0).contains(v)).map(|v| v as u8),
                fhir::Value::Concept(c) => {
                    c.codings.iter().find_map(|k| k.code.as_deref().and_then(|code| vocab.ecog_answers.get(code).copied()))
                }
                _ => None,
            };
            match score.filter(|s| *s <= 5) {
                Some(s) => Ok(Fact::Ecog(s)),
                None => Err(no_value(format!("ECOG {} is not a score 0-5 or a LOINC answer code", value_form(value)))),
            }
        }
        ObservationClass::Stage(axis) => {
            let texts: Vec<&str> = match value {
                fhir::Value::Concept(c) => {
                    let mut t: Vec<&str> = Vec::new();
                    for k in &c.codings {
                        t.extend(k.code.as_deref());
                        t.extend(k.display.as_deref());
                    }
                    t.extend(c.text.as_deref());
                    t
                }
                fhir::Value::String(s) => vec![s.as_str()],
                other => return Err(no_value(format!("stage {} is not read", value_form(other)))),
            };
            match texts.iter().find_map(|t| super::stage::parse(axis, t)) {
                Some(v) => Ok(Fact::Stage { axis, value: v }),
                None => Err(no_value(format!("stage value not recognised for {}", axis_name(axis)))),
            }
        }
    }
}

fn axis_name(a: StageAxis) -> &'static str {
    match a {
        StageAxis::Group => "stage group",
        StageAxis::T => "T category",
        StageAxis::N => "N category",
        StageAxis::M => "M category",
    }
}

pub(super) fn condition(
    vocab: &Vocabulary,
    raw: &str,
    ident: &Identity<'_>,
    resolve: impl Fn(Option<&fhir::Reference>) -> Subject,
) -> Decoded {
    let c = match fhir::condition(raw) {
        Ok(c) => c,
        Err(e) => return invalid(e),
    };
    let Some(code) = c.code.as_ref() else {
        return Decoded::Ignored(IgnoreReason::NotRelevant, "Condition has no code".into());
    };
    let class = code.codings.iter().find_map(|k| k.code.as_deref().and_then(|v| vocab.condition(k.system.as_deref(), v)));
    let fact = match class {
        None => {
            return Decoded::Ignored(IgnoreReason::NotRelevant, format!("Condition.code ({}) is not in the vocabulary", codes_of(code)))
        }
        Some(ConditionClass::Ignored) => {
            return Decoded::Ignored(IgnoreReason::NotRelevant, format!("Condition.code ({}) is listed as not relevant", codes_of(code)))
        }
        Some(ConditionClass::Primary(site)) => Fact::Primary(site),
        Some(ConditionClass::NotEligible) => Fact::NotEligible,
        Some(ConditionClass::Metastasis) => Fact::Metastasis,
        Some(ConditionClass::Finding(g)) => Fact::Finding(g),
    };
    let verification = c.verification_status.as_ref().and_then(|v| v.codings.iter().find_map(|k| k.code.clone()));
    let retract = matches!(verification.as_deref(), Some("entered-in-error" | "refuted"));
    let patient = match patient_of("Condition", resolve(Some(&c.subject))) {
        Ok(p) => p,
        Err(d) => return d,
    };
    let when = time(c.onset).or(time(c.recorded));
    let resource = ResourceId { kind: ResourceKind::Condition, id: ident.id(c.id.as_deref()) };
    let version = version(&c.meta);
    if retract {
        return Decoded::Event(ClinicalEvent { patient, resource, version, time: when, fact: Fact::Retraction });
    }
    let Some(when) = when else {
        return Decoded::Rejected(RejectReason::NoEventTime, "Condition: none of onsetDateTime, onsetPeriod.start, recordedDate".into());
    };
    Decoded::Event(ClinicalEvent { patient, resource, version, time: Some(when), fact })
}

pub(super) fn imaging_study(
    vocab: &Vocabulary,
    raw: &str,
    ident: &Identity<'_>,
    resolve: impl Fn(Option<&fhir::Reference>) -> Subject,
) -> Decoded {
    let s = match fhir::imaging_study(raw) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let mut groups: Vec<ImagingGroup> = s.modalities.iter().filter_map(|m| vocab.imaging.get(m).copied()).collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        return Decoded::Ignored(
            IgnoreReason::NotRelevant,
            format!("ImagingStudy modalities {:?} are not in the vocabulary", s.modalities),
        );
    }
    let retract = s.status == "entered-in-error";
    if s.status == "cancelled" {
        return Decoded::Ignored(IgnoreReason::StatusExcluded, "ImagingStudy.status is cancelled".into());
    }
    let patient = match patient_of("ImagingStudy", resolve(Some(&s.subject))) {
        Ok(p) => p,
        Err(d) => return d,
    };
    let when = time(s.started);
    let resource = ResourceId { kind: ResourceKind::ImagingStudy, id: ident.id(s.id.as_deref()) };
    let version = version(&s.meta);
    if retract {
        return Decoded::Event(ClinicalEvent { patient, resource, version, time: when, fact: Fact::Retraction });
    }
    let Some(when) = when else {
        return Decoded::Rejected(RejectReason::NoEventTime, "ImagingStudy.started is missing".into());
    };
    Decoded::Event(ClinicalEvent { patient, resource, version, time: Some(when), fact: Fact::Imaging(groups) })
}

/// Decodes a Patient, also returning its business identifiers (for identifier-only references).
pub(super) fn patient_with_identifiers(raw: &str, full_url: Option<&str>) -> (Decoded, Vec<(Option<String>, String)>) {
    let p = match fhir::patient(raw) {
        Ok(p) => p,
        Err(e) => return (invalid(e), Vec::new()),
    };
    let key = match (p.id.as_deref().filter(|s| !s.is_empty()), full_url) {
        (Some(id), _) => Some(PatientKey::from_id(id)),
        (None, Some(u)) => match parse_reference(u) {
            RefTarget::Patient(id) => Some(PatientKey::from_id(&id)),
            RefTarget::Urn(u) => Some(PatientKey::from_id(u.trim_start_matches("urn:uuid:").trim_start_matches("urn:oid:"))),
            _ => None,
        },
        (None, None) => None,
    };
    let ids: Vec<(Option<String>, String)> = p.identifiers.iter().filter_map(|i| i.value.clone().map(|v| (i.system.clone(), v))).collect();
    let key = key.or_else(|| ids.first().map(|(s, v)| PatientKey::from_identifier(s.as_deref().unwrap_or(""), v)));
    let Some(patient) = key else {
        return (Decoded::Rejected(RejectReason::NoPatient, "Patient has no id, fullUrl or identifier".into()), ids);
    };
    let female = p.gender.as_deref().and_then(|g| match g {
        "female" => Some(true),
        "male" => Some(false),
        _ => None,
    });
    let ev = ClinicalEvent {
        resource: ResourceId { kind: ResourceKind::Patient, id: patient.as_str().trim_start_matches("Patient/").to_string() },
        patient,
        version: version(&p.meta),
        time: None,
        fact: Fact::Demographics { birth: time(p.birth_date), female, deceased: p.deceased },
    };
    (Decoded::Event(ev), ids)
}
