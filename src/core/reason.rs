//! Outcome accounting: every resource ends applied, ignored with a reason, or rejected with a reason.
//!
//! Reason codes are stable API (metric labels, summary JSON keys, DLQ headers): add new ones at the end,
//! never rename one.

use serde::Serialize;
use std::collections::BTreeMap;

/// Why a resource was ignored: it was read correctly but does not change patient state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    UnsupportedResource,
    NotRelevant,
    Duplicate,
    StaleVersion,
    StatusExcluded,
    NoValue,
    UnconvertibleUnit,
    SubjectNotPatient,
}

/// Why a resource was rejected: it could not be read as a usable event; it goes to the DLQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    InvalidJson,
    InvalidFhir,
    NoPatient,
    NoEventTime,
    TooLarge,
    TooDeep,
}

impl IgnoreReason {
    pub const ALL: [IgnoreReason; 8] = [
        Self::UnsupportedResource,
        Self::NotRelevant,
        Self::Duplicate,
        Self::StaleVersion,
        Self::StatusExcluded,
        Self::NoValue,
        Self::UnconvertibleUnit,
        Self::SubjectNotPatient,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Self::UnsupportedResource => "unsupported_resource",
            Self::NotRelevant => "not_relevant",
            Self::Duplicate => "duplicate",
            Self::StaleVersion => "stale_version",
            Self::StatusExcluded => "status_excluded",
            Self::NoValue => "no_value",
            Self::UnconvertibleUnit => "unconvertible_unit",
            Self::SubjectNotPatient => "subject_not_patient",
        }
    }
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] =
        [Self::InvalidJson, Self::InvalidFhir, Self::NoPatient, Self::NoEventTime, Self::TooLarge, Self::TooDeep];
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidFhir => "invalid_fhir",
            Self::NoPatient => "no_patient",
            Self::NoEventTime => "no_event_time",
            Self::TooLarge => "too_large",
            Self::TooDeep => "too_deep",
        }
    }
}

/// The final outcome of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Ignored(IgnoreReason, String),
    Rejected(RejectReason, String),
}

impl Outcome {
    pub fn reason_code(&self) -> Option<&'static str> {
        match self {
            Outcome::Applied => None,
            Outcome::Ignored(r, _) => Some(r.code()),
            Outcome::Rejected(r, _) => Some(r.code()),
        }
    }
}

/// Counts of outcomes; `resources == applied + Σ ignored + Σ rejected` holds by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub resources: u64,
    pub applied: u64,
    pub ignored: BTreeMap<IgnoreReason, u64>,
    pub rejected: BTreeMap<RejectReason, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            records: 0,
            resources: 0,
            applied: 0,
            ignored: IgnoreReason::ALL.iter().map(|r| (*r, 0)).collect(),
            rejected: RejectReason::ALL.iter().map(|r| (*r, 0)).collect(),
        }
    }
}

impl Tally {
    pub fn count(&mut self, outcome: &Outcome) {
        self.resources += 1;
        match outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Ignored(r, _) => *self.ignored.entry(*r).or_default() += 1,
            Outcome::Rejected(r, _) => *self.rejected.entry(*r).or_default() += 1,
        }
    }
    pub fn ignored_total(&self) -> u64 {
        self.ignored.values().sum()
    }
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// The accounting identity.
    pub fn balances(&self) -> bool {
        self.resources == self.applied + self.ignored_total() + self.rejected_total()
    }
    /// The summary JSON object of the replay contract (every known reason key present).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("records".into(), self.records.into());
        m.insert("resources".into(), self.resources.into());
        m.insert("applied".into(), self.applied.into());
        let ig: serde_json::Map<_, _> = self.ignored.iter().map(|(r, n)| (r.code().to_string(), (*n).into())).collect();
        let rj: serde_json::Map<_, _> = self.rejected.iter().map(|(r, n)| (r.code().to_string(), (*n).into())).collect();
        m.insert("ignored".into(), ig.into());
        m.insert("rejected".into(), rj.into());
        m
    }
}
