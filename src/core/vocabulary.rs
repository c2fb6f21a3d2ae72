//! The clinical vocabulary: code sets loaded from `config/vocabulary.toml` (built in) or a site's own file.
//!
//! Owns the lookups decode needs: what a Condition code means (primary by site, not eligible, metastasis,
//! finding by group, a documented trap), which series an Observation code is (with its canonical unit and
//! unit table), staging and ECOG codes, imaging modality groups.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The vocabulary shipped with the code (the default when `vocabulary.path` is empty).
pub const BUILTIN: &str = include_str!("../../config/vocabulary.toml");

pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// Primary site groups (the site one-hot of the features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    Breast,
    Colorectal,
    Lung,
    Prostate,
    Melanoma,
    Other,
}

impl Site {
    pub const ALL: [Site; 6] = [Site::Breast, Site::Colorectal, Site::Lung, Site::Prostate, Site::Melanoma, Site::Other];
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Breast => "breast",
            Site::Colorectal => "colorectal",
            Site::Lung => "lung",
            Site::Prostate => "prostate",
            Site::Melanoma => "melanoma",
            Site::Other => "other",
        }
    }
}

/// Finding groups of symptom/sign Conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingGroup {
    Bone,
    Neuro,
    Hepatic,
    Respiratory,
    Constitutional,
    Fracture,
}

impl FindingGroup {
    pub const ALL: [FindingGroup; 6] = [Self::Bone, Self::Neuro, Self::Hepatic, Self::Respiratory, Self::Constitutional, Self::Fracture];
}

/// Imaging modality groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagingGroup {
    CtMr,
    PetNm,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    Marker,
    Lab,
    Vital,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSystem {
    Snomed,
    Icd10,
    Loinc,
}

/// What a Condition code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionClass {
    Primary(Site),
    NotEligible,
    Metastasis,
    Finding(FindingGroup),
    /// Listed on purpose as not relevant (a trap such as "suspected" or "family history").
    Ignored,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    pub system: CodeSystem,
    pub code: String,
    pub display: String,
    #[serde(default)]
    pub site: Option<Site>,
    #[serde(default)]
    pub group: Option<FindingGroup>,
    #[serde(default)]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitFactor {
    pub ucum: String,
    pub factor: f64,
}

/// One measured series (a tumour marker, lab or vital).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub key: String,
    pub display: String,
    pub kind: SeriesKind,
    pub loinc: Vec<String>,
    pub unit: String,
    #[serde(default)]
    pub uln: Option<f64>,
    #[serde(default)]
    pub sites: Vec<Site>,
    pub units: Vec<UnitFactor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCodes {
    pub group: Vec<String>,
    pub t: Vec<String>,
    pub n: Vec<String>,
    pub m: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcogCodes {
    pub loinc: Vec<String>,
    pub answers: HashMap<String, u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagingCodes {
    pub modalities: HashMap<String, ImagingGroup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyFile {
    version: u32,
    primary: Vec<CodeEntry>,
    not_eligible: Vec<CodeEntry>,
    metastasis: Vec<CodeEntry>,
    finding: Vec<CodeEntry>,
    ignored: Vec<CodeEntry>,
    series: Vec<Series>,
    stage: StageCodes,
    ecog: EcogCodes,
    imaging: ImagingCodes,
}

/// Staging axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StageAxis {
    Group,
    T,
    N,
    M,
}

/// What an Observation code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationClass {
    Series(SeriesId),
    Stage(StageAxis),
    Ecog,
}

/// Index of a series in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesId(pub u16);

/// The loaded vocabulary with its lookup tables.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    snomed: HashMap<String, ConditionClass>,
    icd10: Vec<(String, ConditionClass)>,
    loinc: HashMap<String, ObservationClass>,
    pub series: Vec<Series>,
    pub ecog_answers: HashMap<String, u8>,
    pub imaging: HashMap<String, ImagingGroup>,
}

#[derive(Debug, thiserror::Error)]
pub enum VocabularyError {
    #[error("vocabulary: {0}")]
    Parse(String),
    #[error("vocabulary: unsupported format version {0} (this build reads version 1)")]
    Version(u32),
    #[error("vocabulary: {list} entry {code}: {problem}")]
    Entry { list: &'static str, code: String, problem: String },
}

impl Vocabulary {
    pub fn builtin() -> Result<Self, VocabularyError> {
        Self::from_toml(BUILTIN)
    }

    pub fn from_toml(text: &str) -> Result<Self, VocabularyError> {
        let f: VocabularyFile = toml::from_str(text).map_err(|e| VocabularyError::Parse(e.to_string()))?;
        if f.version != 1 {
            return Err(VocabularyError::Version(f.version));
        }
        let mut v = Vocabulary {
            snomed: HashMap::new(),
            icd10: Vec::new(),
            loinc: HashMap::new(),
            series: Vec::new(),
            ecog_answers: f.ecog.answers.clone(),
            imaging: f.imaging.modalities.clone(),
        };
        let lists: [(&'static str, &Vec<CodeEntry>); 5] = [
            ("primary", &f.primary),
            ("not_eligible", &f.not_eligible),
            ("metastasis", &f.metastasis),
            ("finding", &f.finding),
            ("ignored", &f.ignored),
        ];
        for (list, entries) in lists {
            for e in entries {
                let class = match list {
                    "primary" => ConditionClass::Primary(e.site.ok_or_else(|| VocabularyError::Entry {
                        list,
                        code: e.code.clone(),
                        problem: "a primary needs `site`".into(),
                    })?),
                    "not_eligible" => ConditionClass::NotEligible,
                    "metastasis" => ConditionClass::Metastasis,
                    "finding" => ConditionClass::Finding(e.group.ok_or_else(|| VocabularyError::Entry {
                        list,
                        code: e.code.clone(),
                        problem: "a finding needs `group`".into(),
                    })?),
                    _ => ConditionClass::Ignored,
                };
                match e.system {
                    CodeSystem::Snomed => {
                        v.snomed.insert(e.code.clone(), class);
                    }
                    CodeSystem::Icd10 => v.icd10.push((normalise_icd(&e.code), class)),
                    CodeSystem::Loinc => {
                        return Err(VocabularyError::Entry { list, code: e.code.clone(), problem: "conditions use snomed or icd10".into() })
                    }
                }
            }
        }
        // Longest prefix first, so the most specific ICD-10 entry wins.
        v.icd10.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        for (i, s) in f.series.iter().enumerate() {
            let id = SeriesId(u16::try_from(i).map_err(|_| VocabularyError::Parse("too many series".into()))?);
            if !s.units.iter().any(|u| u.ucum == s.unit) {
                return Err(VocabularyError::Entry {
                    list: "series",
                    code: s.key.clone(),
                    problem: "its canonical unit is not in `units`".into(),
                });
            }
            for code in &s.loinc {
                v.loinc.insert(code.clone(), ObservationClass::Series(id));
            }
        }
        v.series = f.series;
        for (axis, codes) in
            [(StageAxis::Group, &f.stage.group), (StageAxis::T, &f.stage.t), (StageAxis::N, &f.stage.n), (StageAxis::M, &f.stage.m)]
        {
            for c in codes {
                v.loinc.insert(c.clone(), ObservationClass::Stage(axis));
            }
        }
        for c in &f.ecog.loinc {
            v.loinc.insert(c.clone(), ObservationClass::Ecog);
        }
        Ok(v)
    }

    /// Classifies a Condition code (the first coding that the vocabulary knows wins).
    pub fn condition(&self, system: Option<&str>, code: &str) -> Option<ConditionClass> {
        match system {
            Some(SNOMED) => self.snomed.get(code).copied(),
            Some(s) if s.contains("icd-10") || s.contains("icd10") => {
                let c = normalise_icd(code);
                self.icd10.iter().find(|(p, _)| c.starts_with(p.as_str())).map(|(_, k)| *k)
            }
            _ => None,
        }
    }

    /// Classifies an Observation code (LOINC only).
    pub fn observation(&self, system: Option<&str>, code: &str) -> Option<ObservationClass> {
        if system == Some(LOINC) {
            self.loinc.get(code).copied()
        } else {
            None
        }
    }

    pub fn series(&self, id: SeriesId) -> &Series {
        &self.series[usize::from(id.0)]
    }

    pub fn series_by_key(&self, key: &str) -> Option<SeriesId> {
        self.series.iter().position(|s| s.key == key).and_then(|i| u16::try_from(i).ok()).map(SeriesId)
    }

    /// The factor that converts a Quantity to the series' canonical unit: `Quantity.code` with system UCUM
    /// first, then `Quantity.unit` text. `None`: not convertible (never guessed).
    pub fn unit_factor(&self, id: SeriesId, system: Option<&str>, code: Option<&str>, unit: Option<&str>) -> Option<f64> {
        let s = self.series(id);
        if system == Some(UCUM) {
            if let Some(c) = code {
                if let Some(u) = s.units.iter().find(|u| u.ucum == c) {
                    return Some(u.factor);
                }
            }
        }
        let text = unit.or(code)?;
        s.units.iter().find(|u| u.ucum == text).map(|u| u.factor)
    }
}

fn normalise_icd(code: &str) -> String {
    code.chars().filter(|c| *c != '.').map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_loads_and_classifies() {
        let v = Vocabulary::builtin().unwrap();
        assert_eq!(v.condition(Some(SNOMED), "93761005"), Some(ConditionClass::Primary(Site::Colorectal)));
        assert_eq!(v.condition(Some("http://hl7.org/fhir/sid/icd-10-cm"), "C50.911"), Some(ConditionClass::Primary(Site::Breast)));
        assert_eq!(v.condition(Some("http://hl7.org/fhir/sid/icd-10-cm"), "C78.7"), Some(ConditionClass::Metastasis));
        assert_eq!(v.condition(Some(SNOMED), "162573006"), Some(ConditionClass::Ignored));
        let ca = v.series_by_key("calcium").unwrap();
        let f = v.unit_factor(ca, Some(UCUM), Some("mmol/L"), None).unwrap();
        assert!((f - 4.008).abs() < 1e-9);
        assert!(v.unit_factor(ca, Some(UCUM), Some("furlong"), Some("furlong")).is_none());
    }
}
