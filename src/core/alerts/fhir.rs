//! The RiskAssessment builder: an alert as FHIR R4 JSON. No wall-clock time anywhere in it; the same inputs
//! give the same bytes (object keys are written in sorted order).

use crate::core::identity::{EventTime, PatientKey};
use serde_json::{json, Value};

pub const ALERT_ID_SYSTEM: &str = "urn:oncowatch:alert";
pub const TIER_EXTENSION: &str = "https://oncowatch.example.org/fhir/StructureDefinition/alert-tier";
pub const MODEL_SYSTEM: &str = "urn:oncowatch:model";

/// Everything an alert says.
pub struct AlertContent<'a> {
    pub id: &'a str,
    pub withdrawn: bool,
    pub patient: &'a PatientKey,
    pub time: EventTime,
    pub model_name: &'a str,
    pub model_version: &'a str,
    pub probability: f64,
    pub horizon_days: u32,
    pub tier: &'a str,
    pub basis: &'a [String],
    pub notes: &'a [String],
}

fn subject(k: &PatientKey) -> Value {
    match k.as_str().strip_prefix("Patient?identifier=") {
        Some(rest) => {
            let (system, value) = rest.split_once('|').unwrap_or(("", rest));
            let mut ident = json!({ "value": value });
            if !system.is_empty() {
                ident["system"] = json!(system);
            }
            json!({ "identifier": ident, "type": "Patient" })
        }
        None => json!({ "reference": k.as_str() }),
    }
}

/// The RiskAssessment JSON of an alert.
pub fn risk_assessment(a: &AlertContent<'_>) -> Value {
    let days = |v: u32| json!({ "value": v, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d" });
    let mut ra = json!({
        "resourceType": "RiskAssessment",
        "id": a.id,
        "identifier": [{ "system": ALERT_ID_SYSTEM, "value": a.id }],
        "status": if a.withdrawn { "entered-in-error" } else { "final" },
        "subject": subject(a.patient),
        "occurrenceDateTime": a.time.to_rfc3339(),
        "method": {
            "coding": [{ "system": MODEL_SYSTEM, "code": a.model_name, "version": a.model_version }],
            "text": format!("{} {}", a.model_name, a.model_version)
        },
        "prediction": [{
            "outcome": {
                "coding": [{ "system": "http://snomed.info/sct", "code": "128462008", "display": "Secondary malignant neoplastic disease" }],
                "text": "metastatic malignant neoplasm"
            },
            "probabilityDecimal": (a.probability * 10_000.0).round() / 10_000.0,
            "whenRange": { "low": days(0), "high": days(a.horizon_days) }
        }],
        "extension": [{ "url": TIER_EXTENSION, "valueCode": a.tier }],
    });
    if !a.basis.is_empty() {
        ra["basis"] = Value::Array(a.basis.iter().map(|r| json!({ "reference": r })).collect());
    }
    if !a.notes.is_empty() {
        ra["note"] = Value::Array(a.notes.iter().map(|n| json!({ "text": n })).collect());
    }
    ra
}
