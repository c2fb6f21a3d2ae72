//! `ClinicalEvent`: what one decoded resource says about one patient, in the core's own terms.

use super::identity::{EventTime, PatientKey, ResourceId, ResourceVersion};
use super::vocabulary::{FindingGroup, ImagingGroup, SeriesId, Site, StageAxis};
use serde::{Deserialize, Serialize};

/// A measurement's comparator, kept as the bound it states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    Less,
    LessOrEqual,
    GreaterOrEqual,
    Greater,
}

impl Comparator {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "<" => Some(Self::Less),
            "<=" => Some(Self::LessOrEqual),
            ">=" => Some(Self::GreaterOrEqual),
            ">" => Some(Self::Greater),
            _ => None,
        }
    }
}

/// The clinical content of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    /// A numeric value of a series, in the series' canonical unit.
    Measurement { series: SeriesId, value: f64, comparator: Option<Comparator> },
    /// A stage group (1–4), T (0–4), N (0–3) or M (0–1) category.
    Stage { axis: StageAxis, value: u8 },
    /// ECOG performance status 0–5.
    Ecog(u8),
    /// An eligible primary cancer.
    Primary(Site),
    /// A cancer that does not make the patient eligible (in situ, haematological, …).
    NotEligible,
    /// Confirmed metastasis (a secondary malignancy Condition).
    Metastasis,
    /// A symptom or sign.
    Finding(FindingGroup),
    /// An imaging study, by modality group.
    Imaging(Vec<ImagingGroup>),
    /// Patient demographics (timeless).
    Demographics { birth: Option<EventTime>, female: Option<bool>, deceased: bool },
    /// Removes what the named resource contributed (entered-in-error, refuted, DELETE).
    Retraction,
}

/// One decoded resource: about whom, which resource and version, when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalEvent {
    pub patient: PatientKey,
    pub resource: ResourceId,
    pub version: ResourceVersion,
    /// Event time; `None` only for demographics and for retractions without a time of their own.
    pub time: Option<EventTime>,
    pub fact: Fact,
}
