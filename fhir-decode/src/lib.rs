//! Typed FHIR R4 decoding for oncowatch.
//!
//! This crate owns the one expensive dependency, the fhir-sdk R4B models, and keeps them behind four plain
//! functions (`observation`, `condition`, `imaging_study`, `patient`) that take the raw JSON of one resource
//! and return small owned structs of the fields oncowatch reads. The serde code of the models is generated
//! where they are used, so keeping that use here means edits elsewhere in the project do not recompile it.
//!
//! API boundary: no fhir-sdk type crosses it. Times come out as UTC epoch milliseconds with their
//! precision, codes as strings.
//!
//! The models silently turn some malformed values of choice fields (`effective[x]`, `value[x]`,
//! `onset[x]`) into "absent". Each decoder therefore also reads which of those keys were present in the raw
//! JSON and reports a field that was present but lost as an error naming the field, never as missing data.

use fhir_sdk::r4b::resources as fr;
use fhir_sdk::r4b::types as ft;
use fhir_sdk::{Date as FDate, DateTime as FDateTime, Instant as FInstant};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// Why a resource failed the typed decode: the field path (dotted, FHIR names) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// FHIR element path of the offending field, e.g. `Observation.effectiveDateTime`.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// How precise a FHIR date or dateTime was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Year,
    Month,
    Day,
    Instant,
}

/// A FHIR date/dateTime/instant as the first UTC instant it denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub epoch_ms: i64,
    pub precision: Precision,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concept {
    pub codings: Vec<Coding>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identifier {
    pub system: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reference {
    pub reference: Option<String>,
    pub identifier: Option<Identifier>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub version_id: Option<String>,
    pub last_updated: Option<Time>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantity {
    pub value: Option<f64>,
    /// `<`, `<=`, `>=`, `>` when the value is a bound.
    pub comparator: Option<String>,
    pub unit: Option<String>,
    pub system: Option<String>,
    pub code: Option<String>,
}

/// The `value[x]` of an Observation, in the forms oncowatch reads; every other form is named only.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Quantity(Quantity),
    Integer(i64),
    Concept(Concept),
    String(String),
    /// A form oncowatch does not read, by its FHIR type name (`Boolean`, `Range`, `Ratio`, …).
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub id: Option<String>,
    pub meta: Meta,
    pub status: String,
    pub code: Concept,
    pub subject: Option<Reference>,
    /// effectiveDateTime, effectiveInstant, or effectivePeriod.start (else .end).
    pub effective: Option<Time>,
    pub issued: Option<Time>,
    pub value: Option<Value>,
    pub data_absent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub id: Option<String>,
    pub meta: Meta,
    pub code: Option<Concept>,
    pub clinical_status: Option<Concept>,
    pub verification_status: Option<Concept>,
    pub subject: Reference,
    /// onsetDateTime or onsetPeriod.start.
    pub onset: Option<Time>,
    pub recorded: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImagingStudy {
    pub id: Option<String>,
    pub meta: Meta,
    pub status: String,
    /// DICOM modality codes of the study and of each series, de-duplicated, in order of appearance.
    pub modalities: Vec<String>,
    pub subject: Reference,
    pub started: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: Option<String>,
    pub meta: Meta,
    pub identifiers: Vec<Identifier>,
    pub gender: Option<String>,
    pub birth_date: Option<Time>,
    /// deceasedBoolean true, or a deceasedDateTime.
    pub deceased: bool,
}

/// Decodes one Observation.
pub fn observation(json: &str) -> Result<Observation, DecodeError> {
    let typed: fr::Observation = typed_decode(json, "Observation")?;
    let raw: ObservationKeys = keys(json, "Observation")?;
    let o = &*typed.0;
    let mut effective = None;
    match &o.effective {
        Some(fr::ObservationEffective::DateTime(d)) => effective = Some(date_time(d)),
        Some(fr::ObservationEffective::Instant(i)) => effective = Some(instant(i)),
        Some(fr::ObservationEffective::Period(p)) => {
            effective = p.start.as_ref().or(p.end.as_ref()).map(date_time);
            if let Some(rp) = &raw.effective_period {
                lost(rp.start.is_some() && p.start.is_none(), "Observation.effectivePeriod.start", "dateTime")?;
                lost(rp.end.is_some() && p.end.is_none(), "Observation.effectivePeriod.end", "dateTime")?;
            }
        }
        Some(fr::ObservationEffective::Timing(_)) => {}
        None => {
            lost(raw.effective_date_time.is_some(), "Observation.effectiveDateTime", "dateTime")?;
            lost(raw.effective_instant.is_some(), "Observation.effectiveInstant", "instant")?;
            lost(raw.effective_period.is_some(), "Observation.effectivePeriod", "Period")?;
        }
    }
    let value = match &o.value {
        None => {
            lost(raw.value_quantity.is_some(), "Observation.valueQuantity", "Quantity")?;
            lost(raw.value_integer.is_some(), "Observation.valueInteger", "integer")?;
            lost(raw.value_codeable_concept.is_some(), "Observation.valueCodeableConcept", "CodeableConcept")?;
            lost(raw.value_string.is_some(), "Observation.valueString", "string")?;
            None
        }
        Some(fr::ObservationValue::Quantity(q)) => {
            let q = quantity(q);
            let raw_value = raw.value_quantity.as_ref().and_then(|r| r.value.as_ref());
            lost(raw_value.is_some() && q.value.is_none(), "Observation.valueQuantity.value", "decimal")?;
            Some(Value::Quantity(q))
        }
        Some(fr::ObservationValue::Integer(i)) => Some(Value::Integer(i64::from(*i))),
        Some(fr::ObservationValue::CodeableConcept(c)) => Some(Value::Concept(concept(c))),
        Some(fr::ObservationValue::String(s)) => Some(Value::String(s.clone())),
        Some(fr::ObservationValue::Boolean(_)) => Some(Value::Other("Boolean")),
        Some(fr::ObservationValue::Range(_)) => Some(Value::Other("Range")),
        Some(fr::ObservationValue::Ratio(_)) => Some(Value::Other("Ratio")),
        Some(fr::ObservationValue::SampledData(_)) => Some(Value::Other("SampledData")),
        Some(fr::ObservationValue::Time(_)) => Some(Value::Other("Time")),
        Some(fr::ObservationValue::DateTime(_)) => Some(Value::Other("DateTime")),
        Some(fr::ObservationValue::Period(_)) => Some(Value::Other("Period")),
    };
    Ok(Observation {
        id: o.id.clone(),
        meta: meta(o.meta.as_ref()),
        status: o.status.to_string(),
        code: concept(&o.code),
        subject: o.subject.as_ref().map(reference),
        effective,
        issued: o.issued.as_ref().map(instant),
        value,
        data_absent: o.data_absent_reason.is_some(),
    })
}

/// Decodes one Condition.
pub fn condition(json: &str) -> Result<Condition, DecodeError> {
    let typed: fr::Condition = typed_decode(json, "Condition")?;
    let raw: ConditionKeys = keys(json, "Condition")?;
    let c = &*typed.0;
    let onset = match &c.onset {
        Some(fr::ConditionOnset::DateTime(d)) => Some(date_time(d)),
        Some(fr::ConditionOnset::Period(p)) => {
            let rp_start = raw.onset_period.as_ref().and_then(|p| p.start.as_ref());
            lost(rp_start.is_some() && p.start.is_none(), "Condition.onsetPeriod.start", "dateTime")?;
            p.start.as_ref().map(date_time)
        }
        Some(_) => None,
        None => {
            lost(raw.onset_date_time.is_some(), "Condition.onsetDateTime", "dateTime")?;
            lost(raw.onset_period.is_some(), "Condition.onsetPeriod", "Period")?;
            None
        }
    };
    Ok(Condition {
        id: c.id.clone(),
        meta: meta(c.meta.as_ref()),
        code: c.code.as_ref().map(concept),
        clinical_status: c.clinical_status.as_ref().map(concept),
        verification_status: c.verification_status.as_ref().map(concept),
        subject: reference(&c.subject),
        onset,
        recorded: c.recorded_date.as_ref().map(date_time),
    })
}

/// Decodes one ImagingStudy.
pub fn imaging_study(json: &str) -> Result<ImagingStudy, DecodeError> {
    let typed: fr::ImagingStudy = typed_decode(json, "ImagingStudy")?;
    let s = &*typed.0;
    let mut modalities: Vec<String> = Vec::new();
    let series_modalities = s.series.iter().flatten().map(|se| &se.modality);
    for coding in s.modality.iter().flatten().chain(series_modalities) {
        if let Some(code) = &coding.code {
            if !modalities.contains(code) {
                modalities.push(code.clone());
            }
        }
    }
    Ok(ImagingStudy {
        id: s.id.clone(),
        meta: meta(s.meta.as_ref()),
        status: s.status.to_string(),
        modalities,
        subject: reference(&s.subject),
        started: s.started.as_ref().map(date_time),
    })
}

/// Decodes one Patient.
pub fn patient(json: &str) -> Result<Patient, DecodeError> {
    let typed: fr::Patient = typed_decode(json, "Patient")?;
    let raw: PatientKeys = keys(json, "Patient")?;
    let p = &*typed.0;
    let deceased = match &p.deceased {
        Some(fr::PatientDeceased::Boolean(b)) => *b,
        Some(fr::PatientDeceased::DateTime(_)) => true,
        None => {
            lost(raw.deceased_date_time.is_some(), "Patient.deceasedDateTime", "dateTime")?;
            lost(raw.deceased_boolean.is_some(), "Patient.deceasedBoolean", "boolean")?;
            false
        }
    };
    Ok(Patient {
        id: p.id.clone(),
        meta: meta(p.meta.as_ref()),
        identifiers: p.identifier.iter().flatten().map(identifier).collect(),
        gender: p.gender.as_ref().map(|g| g.to_string()),
        birth_date: p.birth_date.as_ref().map(date),
        deceased,
    })
}

/// Checks that a RiskAssessment (an oncowatch alert) decodes with the R4B models, returning the field that
/// fails otherwise. Used by tests and by the alert writer's self-check.
pub fn validate_risk_assessment(json: &str) -> Result<(), DecodeError> {
    let ra: fr::RiskAssessment = typed_decode(json, "RiskAssessment")?;
    if ra.0.prediction.is_empty() {
        return Err(DecodeError { field: "RiskAssessment.prediction".into(), message: "missing".into() });
    }
    Ok(())
}

fn typed_decode<T: serde::de::DeserializeOwned>(json: &str, kind: &str) -> Result<T, DecodeError> {
    match serde_json::from_str::<T>(json) {
        Ok(v) => Ok(v),
        Err(_) => {
            // Errors are rare: only then pay for a second pass that tracks the path of the failure.
            let mut de = serde_json::Deserializer::from_str(json);
            let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(_) => return Err(DecodeError { field: kind.to_string(), message: "not valid FHIR".into() }),
                Err(e) => e,
            };
            let path = err.path().to_string();
            let field = if path == "." || path.is_empty() { kind.to_string() } else { format!("{kind}.{path}") };
            Err(DecodeError { field, message: clean_serde_message(&err.inner().to_string()) })
        }
    }
}

fn keys<'a, T: Deserialize<'a>>(json: &'a str, kind: &str) -> Result<T, DecodeError> {
    serde_json::from_str(json).map_err(|e| DecodeError { field: kind.to_string(), message: clean_serde_message(&e.to_string()) })
}

/// serde messages end with "at line L column C", which means little for one resource cut out of a Bundle.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn lost(lost: bool, field: &str, kind: &str) -> Result<(), DecodeError> {
    if lost {
        Err(DecodeError { field: field.to_string(), message: format!("present but not a valid FHIR {kind}") })
    } else {
        Ok(())
    }
}

fn instant(i: &FInstant) -> Time {
    let t = i.0;
    let ms = t.unix_timestamp().saturating_mul(1000).saturating_add(i64::from(t.millisecond()));
    Time { epoch_ms: ms, precision: Precision::Instant }
}

fn date(d: &FDate) -> Time {
    use fhir_sdk::time::{Date as TDate, Month};
    let (day, precision) = match d {
        FDate::Year(y) => (TDate::from_calendar_date(*y, Month::January, 1).ok(), Precision::Year),
        FDate::YearMonth(y, m) => (TDate::from_calendar_date(*y, *m, 1).ok(), Precision::Month),
        FDate::Date(d) => (Some(*d), Precision::Day),
    };
    let epoch_ms = day.map(|d| d.midnight().assume_utc().unix_timestamp().saturating_mul(1000)).unwrap_or(i64::MIN);
    Time { epoch_ms, precision }
}

fn date_time(d: &FDateTime) -> Time {
    match d {
        FDateTime::Date(d) => date(d),
        FDateTime::DateTime(i) => instant(i),
    }
}

fn meta(m: Option<&ft::Meta>) -> Meta {
    match m {
        None => Meta::default(),
        Some(m) => Meta { version_id: m.version_id.clone(), last_updated: m.last_updated.as_ref().map(instant) },
    }
}

fn coding(c: &ft::Coding) -> Coding {
    Coding { system: c.system.clone(), code: c.code.clone(), display: c.display.clone() }
}

fn concept(c: &ft::CodeableConcept) -> Concept {
    Concept { codings: c.coding.iter().flatten().map(coding).collect(), text: c.text.clone() }
}

fn identifier(i: &ft::Identifier) -> Identifier {
    Identifier { system: i.system.clone(), value: i.value.clone() }
}

fn reference(r: &ft::Reference) -> Reference {
    Reference { reference: r.reference.clone(), identifier: r.identifier.as_ref().map(identifier) }
}

fn quantity(q: &ft::Quantity) -> Quantity {
    Quantity {
        value: q.value,
        comparator: q.comparator.as_ref().map(|c| c.to_string()),
        unit: q.unit.clone(),
        system: q.system.clone(),
        code: q.code.clone(),
    }
}

// Presence of the keys whose malformed values the models drop silently.

#[derive(Deserialize)]
struct PeriodKeys {
    start: Option<IgnoredAny>,
    end: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct QuantityKeys {
    value: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservationKeys {
    effective_date_time: Option<IgnoredAny>,
    effective_instant: Option<IgnoredAny>,
    effective_period: Option<PeriodKeys>,
    value_quantity: Option<QuantityKeys>,
    value_integer: Option<IgnoredAny>,
    value_codeable_concept: Option<IgnoredAny>,
    value_string: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionKeys {
    onset_date_time: Option<IgnoredAny>,
    onset_period: Option<PeriodKeys>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatientKeys {
    deceased_date_time: Option<IgnoredAny>,
    deceased_boolean: Option<IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_effective_is_an_error_naming_the_field() {
        let j = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2021-02-30T10:00"}"#;
        let e = observation(j).unwrap_err();
        assert_eq!(e.field, "Observation.effectiveDateTime");
    }

    #[test]
    fn quantity_value_as_string_is_an_error() {
        let j = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"4.5"}}"#;
        let e = observation(j).unwrap_err();
        assert!(e.field.starts_with("Observation.valueQuantity"), "{e}");
    }

    #[test]
    fn bad_status_names_status() {
        let j = r#"{"resourceType":"Observation","status":"bogus","code":{"text":"x"}}"#;
        let e = observation(j).unwrap_err();
        assert_eq!(e.field, "Observation.status", "{e}");
    }

    #[test]
    fn partial_dates_are_first_instant() {
        let j = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2021-05"}"#;
        let o = observation(j).unwrap();
        let t = o.effective.unwrap();
        assert_eq!(t.precision, Precision::Month);
        assert_eq!(t.epoch_ms, 1_619_827_200_000);
    }

    #[test]
    fn offset_is_converted_to_utc() {
        let j = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2021-05-01T02:00:00+02:00"}"#;
        let o = observation(j).unwrap();
        assert_eq!(o.effective.unwrap().epoch_ms, 1_619_827_200_000);
    }
}
