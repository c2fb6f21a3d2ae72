//! The engine: the one entry point from a record's bytes to outcomes, state changes (and, with a model,
//! scores and alerts). `replay` and `run` both call [`Engine::process`]; it does no IO and reads no clock.

use super::decode::{decode_record, DecodeOptions, Decoded};
use super::identity::{PatientKey, Pseudonymizer};
use super::reason::{Outcome, RejectReason};
use super::state::{ApplyResult, PatientState};
use super::vocabulary::Vocabulary;
use std::collections::BTreeMap;

/// Per-patient states, keyed by canonical patient key (sorted: iteration order is deterministic).
pub type States = BTreeMap<PatientKey, PatientState>;

/// The outcome of one resource of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    pub entry: Option<String>,
    pub resource_type: Option<String>,
    pub outcome: Outcome,
}

/// What processing one record did.
#[derive(Debug, Clone, Default)]
pub struct RecordReport {
    pub resources: Vec<ResourceReport>,
    /// Patients whose state changed (sorted, unique).
    pub changed: Vec<PatientKey>,
}

impl RecordReport {
    pub fn rejected(&self) -> impl Iterator<Item = &ResourceReport> {
        self.resources
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Rejected(..)))
    }
}

/// The core, configured once.
#[derive(Debug)]
pub struct Engine {
    pub vocab: Vocabulary,
    pub decode: DecodeOptions,
    pub pseudonyms: Pseudonymizer,
}

impl Engine {
    pub fn new(vocab: Vocabulary, decode: DecodeOptions, pseudonyms: Pseudonymizer) -> Self {
        Engine {
            vocab,
            decode,
            pseudonyms,
        }
    }

    /// Decodes one record and applies its events to `states`.
    pub fn process(
        &self,
        states: &mut States,
        bytes: &[u8],
        record_key: Option<&PatientKey>,
    ) -> RecordReport {
        let decoded = decode_record(bytes, &self.vocab, &self.decode, record_key);
        let mut report = RecordReport {
            resources: Vec::with_capacity(decoded.len()),
            changed: Vec::new(),
        };
        for d in decoded {
            let outcome = match d.decoded {
                Decoded::Ignored(r, m) => Outcome::Ignored(r, m),
                Decoded::Rejected(r, m) => Outcome::Rejected(r, m),
                Decoded::Event(ev) => {
                    if let Some(k) = record_key.filter(|k| **k != ev.patient) {
                        // A keyed record must be about its key's patient, or partitions would disagree on
                        // where a patient's state lives.
                        let _ = k;
                        Outcome::Rejected(
                            RejectReason::NoPatient,
                            "resource's patient differs from the record key".into(),
                        )
                    } else {
                        let state = states
                            .entry(ev.patient.clone())
                            .or_insert_with(|| PatientState::new(ev.patient.clone()));
                        match state.apply(&ev) {
                            ApplyResult::Applied => {
                                report.changed.push(ev.patient.clone());
                                Outcome::Applied
                            }
                            ApplyResult::Ignored(r) => Outcome::Ignored(
                                r,
                                format!(
                                    "{} {}",
                                    ev.resource.kind.as_str(),
                                    r.code().replace('_', " ")
                                ),
                            ),
                        }
                    }
                }
            };
            report.resources.push(ResourceReport {
                entry: d.entry,
                resource_type: d.resource_type,
                outcome,
            });
        }
        report.changed.sort();
        report.changed.dedup();
        report
    }
}
