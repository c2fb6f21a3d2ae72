//! The clinical simulation of the synthetic cohort: pure (no IO, no clock), deterministic from
//! `(seed, patient number)`. Each patient is simulated from a random stream of its own, so patient `n` is the
//! same whatever the cohort size, and fault injection (a separate stream, in `fhir.rs`) never changes the
//! clinical content.
//!
//! The story of one patient: an adult diagnosed between 2019 and 2022 with an eligible primary solid cancer
//! (stage I-III) or, for a few percent, with a cancer that never makes them eligible (carcinoma in situ,
//! haematological). Follow-up of 1-3 years with visits every 1-3 months (labs, tumour marker, weight, BMI,
//! ECOG) and surveillance imaging every 3-6 months. About a fifth of eligible patients develop metastasis
//! (more at higher stage) 3-30 months after diagnosis; before it, noisy prodromal signals over 30-180 days,
//! not every channel in every patient and almost none in some. Everyone, metastatic or not, has confounders
//! that mimic those signals: benign marker rises, liver disease, weight loss and anaemia of other causes,
//! benign symptoms, incidental-finding work-ups with CT and occasionally PET, a PET at lung staging.
//!
//! Every tuning knob is a named constant below, so the difficulty of the prediction task can be adjusted
//! (the goal: no single routine feature predicts metastasis-within-180-days with AUC above 0.75).

use super::rng::Rng;
use crate::core::identity::{EventTime, PatientKey, MS_PER_DAY};
use crate::core::vocabulary::Site;

// ---------------------------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------------------------

/// Share of patients with a cancer that never makes them eligible (in situ, haematological).
pub const INELIGIBLE_SHARE: f64 = 0.05;
/// Primary site mix of eligible patients.
pub const SITE_WEIGHTS: [(Site, f64); 6] = [
    (Site::Breast, 0.28),
    (Site::Colorectal, 0.20),
    (Site::Lung, 0.18),
    (Site::Prostate, 0.16),
    (Site::Melanoma, 0.08),
    (Site::Other, 0.10),
];
/// Stage group I, II, III mix.
pub const STAGE_WEIGHTS: [f64; 3] = [0.35, 0.38, 0.27];
/// Probability of metastasis during follow-up by stage group I, II, III (before the site multiplier).
pub const METASTASIS_BY_STAGE: [f64; 3] = [0.08, 0.18, 0.35];
/// Site multipliers of the metastasis probability (weighted mean about 1).
pub const METASTASIS_SITE_FACTOR: [(Site, f64); 6] =
    [(Site::Breast, 0.85), (Site::Colorectal, 1.0), (Site::Lung, 1.25), (Site::Prostate, 0.8), (Site::Melanoma, 1.2), (Site::Other, 1.1)];
/// Metastasis time after diagnosis, days (3-30 months).
pub const METASTASIS_DAYS: (f64, f64) = (91.0, 913.0);
/// Follow-up after diagnosis without metastasis, days (1-3 years).
pub const FOLLOW_UP_DAYS: (f64, f64) = (365.0, 1095.0);
/// Follow-up continuing after a metastasis, days.
pub const AFTER_METASTASIS_DAYS: (f64, f64) = (0.0, 120.0);
/// Prodrome length before metastasis, days.
pub const PRODROME_DAYS: (f64, f64) = (30.0, 180.0);
/// Shape of the prodromal rise: signal = (elapsed share of the prodrome) ^ power (higher = later rise).
pub const PRODROME_POWER: f64 = 1.3;
/// Global multiplier of every metastatic signal amplitude.
pub const SIGNAL_STRENGTH: f64 = 1.6;
/// Share of metastatic patients who show almost nothing (visibility 0-0.25); the rest 0.5-1.2.
pub const SILENT_SHARE: f64 = 0.2;
/// Probability that each metastatic signal channel is active in a metastatic patient.
pub const P_MARKER_SIGNAL: f64 = 0.7;
pub const P_LAB_SIGNAL: f64 = 0.7;
pub const P_WASTING_SIGNAL: f64 = 0.55;
pub const P_ECOG_SIGNAL: f64 = 0.4;
pub const P_SYMPTOM: f64 = 0.35;
pub const P_FRACTURE: f64 = 0.06;
pub const P_EXTRA_CT: f64 = 0.45;
pub const P_PET_WORKUP: f64 = 0.6;
pub const P_CONFIRM_IMAGING: f64 = 0.85;

/// Confounders (every patient): probability of each episode over follow-up.
pub const P_BENIGN_MARKER_BUMP: f64 = 0.22;
pub const P_LIVER_DISEASE: f64 = 0.12;
pub const P_WEIGHT_LOSS_OTHER: f64 = 0.15;
pub const P_ANAEMIA_OTHER: f64 = 0.12;
pub const P_BENIGN_HYPERCALCAEMIA: f64 = 0.04;
pub const P_BENIGN_ALP_RISE: f64 = 0.06;
pub const P_INCIDENTAL_WORKUP: f64 = 0.18;
pub const P_INCIDENTAL_PET: f64 = 0.4;
/// Benign symptom Conditions per patient-year.
pub const BENIGN_SYMPTOMS_PER_YEAR: f64 = 0.6;
/// Ad-hoc ultrasound / radiograph studies per patient-year.
pub const ADHOC_IMAGING_PER_YEAR: f64 = 0.8;
/// ECOG recorded off by one from the underlying score.
pub const P_ECOG_NOISE: f64 = 0.15;

/// Visits: mean interval range (days) and its jitter; first visit after diagnosis.
pub const VISIT_INTERVAL_DAYS: (f64, f64) = (30.0, 90.0);
pub const VISIT_JITTER: f64 = 0.25;
pub const FIRST_VISIT_DAYS: (f64, f64) = (10.0, 35.0);
/// Surveillance imaging interval range, days (3-6 months).
pub const SURVEILLANCE_DAYS: (f64, f64) = (90.0, 180.0);
/// Missing data: a whole panel (chemistry or blood count) skipped at a visit; one test skipped.
pub const P_PANEL_MISSING: f64 = 0.1;
pub const P_LAB_MISSING: f64 = 0.1;
/// LDH is not in every panel.
pub const P_LDH_AT_VISIT: f64 = 0.5;
/// A patient whose site has a marker has none measured at all.
pub const P_NO_MARKERS: f64 = 0.15;
pub const P_MARKER_AT_VISIT: f64 = 0.75;
pub const P_WEIGHT_AT_VISIT: f64 = 0.85;
pub const P_BMI_WITH_WEIGHT: f64 = 0.6;
pub const P_ECOG_AT_VISIT: f64 = 0.35;

// ---------------------------------------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------------------------------------

pub const SNOMED: &str = "http://snomed.info/sct";
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const LOINC: &str = "http://loinc.org";

/// One coding: system URL, code, display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coded {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

const fn sct(code: &'static str, display: &'static str) -> Coded {
    Coded { system: SNOMED, code, display }
}

const fn icd(code: &'static str, display: &'static str) -> Coded {
    Coded { system: ICD10CM, code, display }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SexRule {
    Any,
    Female,
    Male,
}

/// A primary diagnosis code with the sex it applies to and its site marker ("other" sites).
struct PrimaryCode {
    code: Coded,
    sex: SexRule,
    marker: Option<Marker>,
}

const fn pc(code: Coded, sex: SexRule, marker: Option<Marker>) -> PrimaryCode {
    PrimaryCode { code, sex, marker }
}

const BREAST_CODES: [PrimaryCode; 7] = [
    pc(sct("254837009", "Malignant neoplasm of breast (disorder)"), SexRule::Any, None),
    pc(icd("C50.911", "Malignant neoplasm of unspecified site of right female breast"), SexRule::Female, None),
    pc(icd("C50.912", "Malignant neoplasm of unspecified site of left female breast"), SexRule::Female, None),
    pc(icd("C50.411", "Malignant neoplasm of upper-outer quadrant of right female breast"), SexRule::Female, None),
    pc(icd("C50.412", "Malignant neoplasm of upper-outer quadrant of left female breast"), SexRule::Female, None),
    pc(icd("C50.921", "Malignant neoplasm of unspecified site of right male breast"), SexRule::Male, None),
    pc(icd("C50.922", "Malignant neoplasm of unspecified site of left male breast"), SexRule::Male, None),
];

const COLORECTAL_CODES: [PrimaryCode; 8] = [
    pc(sct("93761005", "Primary malignant neoplasm of colon"), SexRule::Any, None),
    pc(sct("363406005", "Malignant tumor of colon"), SexRule::Any, None),
    pc(sct("363351006", "Malignant tumor of rectum"), SexRule::Any, None),
    pc(icd("C18.7", "Malignant neoplasm of sigmoid colon"), SexRule::Any, None),
    pc(icd("C18.2", "Malignant neoplasm of ascending colon"), SexRule::Any, None),
    pc(icd("C18.0", "Malignant neoplasm of cecum"), SexRule::Any, None),
    pc(icd("C20", "Malignant neoplasm of rectum"), SexRule::Any, None),
    pc(icd("C19", "Malignant neoplasm of rectosigmoid junction"), SexRule::Any, None),
];

const LUNG_CODES: [PrimaryCode; 7] = [
    pc(sct("254637007", "Non-small cell lung cancer (disorder)"), SexRule::Any, None),
    pc(sct("254632001", "Small cell carcinoma of lung (disorder)"), SexRule::Any, None),
    pc(sct("93880001", "Primary malignant neoplasm of lung (disorder)"), SexRule::Any, None),
    pc(icd("C34.11", "Malignant neoplasm of upper lobe, right bronchus or lung"), SexRule::Any, None),
    pc(icd("C34.12", "Malignant neoplasm of upper lobe, left bronchus or lung"), SexRule::Any, None),
    pc(icd("C34.31", "Malignant neoplasm of lower lobe, right bronchus or lung"), SexRule::Any, None),
    pc(icd("C34.90", "Malignant neoplasm of unspecified part of unspecified bronchus or lung"), SexRule::Any, None),
];

const PROSTATE_CODES: [PrimaryCode; 2] = [
    pc(sct("399068003", "Malignant tumor of prostate (disorder)"), SexRule::Male, None),
    pc(icd("C61", "Malignant neoplasm of prostate"), SexRule::Male, None),
];

const MELANOMA_CODES: [PrimaryCode; 5] = [
    pc(sct("372244006", "Malignant melanoma (disorder)"), SexRule::Any, None),
    pc(icd("C43.59", "Malignant melanoma of other part of trunk"), SexRule::Any, None),
    pc(icd("C43.61", "Malignant melanoma of right upper limb, including shoulder"), SexRule::Any, None),
    pc(icd("C43.72", "Malignant melanoma of left lower limb, including hip"), SexRule::Any, None),
    pc(icd("C43.9", "Malignant melanoma of skin, unspecified"), SexRule::Any, None),
];

const OTHER_CODES: [PrimaryCode; 9] = [
    pc(icd("C56.9", "Malignant neoplasm of unspecified ovary"), SexRule::Female, Some(Marker::Ca125)),
    pc(icd("C54.1", "Malignant neoplasm of endometrium"), SexRule::Female, Some(Marker::Ca125)),
    pc(icd("C22.0", "Liver cell carcinoma"), SexRule::Any, Some(Marker::Afp)),
    pc(icd("C25.9", "Malignant neoplasm of pancreas, unspecified"), SexRule::Any, None),
    pc(icd("C64.1", "Malignant neoplasm of right kidney, except renal pelvis"), SexRule::Any, None),
    pc(icd("C67.9", "Malignant neoplasm of bladder, unspecified"), SexRule::Any, None),
    pc(icd("C16.9", "Malignant neoplasm of stomach, unspecified"), SexRule::Any, None),
    pc(icd("C73", "Malignant neoplasm of thyroid gland"), SexRule::Any, None),
    pc(sct("363346000", "Malignant neoplastic disease"), SexRule::Any, None),
];

/// Not-eligible diagnoses: (code, sex, marker).
const INELIGIBLE_CODES: [PrimaryCode; 6] = [
    pc(icd("D05.11", "Intraductal carcinoma in situ of right breast"), SexRule::Female, None),
    pc(icd("D05.12", "Intraductal carcinoma in situ of left breast"), SexRule::Female, None),
    pc(icd("D07.5", "Carcinoma in situ of prostate"), SexRule::Male, Some(Marker::Psa)),
    pc(sct("92691004", "Carcinoma in situ of prostate (disorder)"), SexRule::Male, Some(Marker::Psa)),
    pc(icd("C91.10", "Chronic lymphocytic leukemia of B-cell type not having achieved remission"), SexRule::Any, None),
    pc(icd("C90.00", "Multiple myeloma not having achieved remission"), SexRule::Any, None),
];

/// Where a metastasis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetSite {
    Bone,
    Liver,
    Lung,
    Brain,
}

impl MetSite {
    fn codes(self) -> [Coded; 2] {
        match self {
            MetSite::Bone => {
                [sct("94222008", "Secondary malignant neoplasm of bone"), icd("C79.51", "Secondary malignant neoplasm of bone")]
            }
            MetSite::Liver => [
                sct("94381002", "Secondary malignant neoplasm of liver"),
                icd("C78.7", "Secondary malignant neoplasm of liver and intrahepatic bile duct"),
            ],
            MetSite::Lung => {
                [sct("94391008", "Secondary malignant neoplasm of lung"), icd("C78.00", "Secondary malignant neoplasm of unspecified lung")]
            }
            MetSite::Brain => {
                [sct("94225005", "Secondary malignant neoplasm of brain"), icd("C79.31", "Secondary malignant neoplasm of brain")]
            }
        }
    }
}

fn met_site_weights(site: Site) -> [(MetSite, f64); 4] {
    use MetSite::*;
    match site {
        Site::Breast => [(Bone, 0.5), (Liver, 0.2), (Lung, 0.2), (Brain, 0.1)],
        Site::Colorectal => [(Bone, 0.1), (Liver, 0.6), (Lung, 0.25), (Brain, 0.05)],
        Site::Lung => [(Bone, 0.3), (Liver, 0.25), (Lung, 0.15), (Brain, 0.3)],
        Site::Prostate => [(Bone, 0.85), (Liver, 0.05), (Lung, 0.1), (Brain, 0.0)],
        Site::Melanoma => [(Bone, 0.2), (Liver, 0.25), (Lung, 0.3), (Brain, 0.25)],
        Site::Other => [(Bone, 0.25), (Liver, 0.35), (Lung, 0.3), (Brain, 0.1)],
    }
}

const BONE_PAIN: Coded = sct("12584003", "Bone pain (finding)");
const BACKACHE: Coded = sct("161891005", "Backache (finding)");
const LOW_BACK_PAIN: Coded = sct("279039007", "Low back pain (finding)");
const PATH_FRACTURE: Coded = sct("268029009", "Pathological fracture (disorder)");
const HEADACHE: Coded = sct("25064002", "Headache (finding)");
const SEIZURE: Coded = sct("91175000", "Seizure (finding)");
const JAUNDICE: Coded = sct("18165001", "Jaundice (finding)");
const HEPATOMEGALY: Coded = sct("80515008", "Hepatomegaly (finding)");
const COUGH: Coded = sct("49727002", "Cough (finding)");
const DYSPNOEA: Coded = sct("267036007", "Dyspnea (finding)");
const HAEMOPTYSIS: Coded = sct("66857006", "Hemoptysis (finding)");
const WEIGHT_LOSS: Coded = sct("89362005", "Weight loss (finding)");
const FATIGUE: Coded = sct("84229001", "Fatigue (finding)");

/// Symptoms of a metastasis by site, each with its probability (times `P_SYMPTOM` scaling).
fn met_symptoms(m: MetSite) -> &'static [(Coded, f64)] {
    match m {
        MetSite::Bone => &[(BONE_PAIN, 1.0), (BACKACHE, 0.7)],
        MetSite::Liver => &[(HEPATOMEGALY, 0.5), (JAUNDICE, 0.35), (FATIGUE, 0.5)],
        MetSite::Lung => &[(COUGH, 1.0), (DYSPNOEA, 0.8), (HAEMOPTYSIS, 0.2)],
        MetSite::Brain => &[(HEADACHE, 1.2), (SEIZURE, 0.45)],
    }
}

/// Background (benign) symptoms with relative weights.
const BENIGN_SYMPTOMS: [(Coded, f64); 10] = [
    (BACKACHE, 0.22),
    (LOW_BACK_PAIN, 0.14),
    (HEADACHE, 0.14),
    (COUGH, 0.16),
    (DYSPNOEA, 0.08),
    (FATIGUE, 0.12),
    (BONE_PAIN, 0.05),
    (WEIGHT_LOSS, 0.03),
    (HEPATOMEGALY, 0.02),
    (HAEMOPTYSIS, 0.04),
];

// ---------------------------------------------------------------------------------------------------------
// Series and units
// ---------------------------------------------------------------------------------------------------------

/// A reporting unit: UCUM code, unit text, factor to the canonical unit, decimals shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    pub code: &'static str,
    pub text: &'static str,
    /// value_in_canonical = value_in_this_unit * factor (as in config/vocabulary.toml).
    pub factor: f64,
    pub decimals: u8,
}

const fn unit(code: &'static str, text: &'static str, factor: f64, decimals: u8) -> Unit {
    Unit { code, text, factor, decimals }
}

/// The measured series the generator emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lab {
    Alp,
    Ldh,
    Calcium,
    Albumin,
    Bilirubin,
    Ast,
    Alt,
    Haemoglobin,
    Platelets,
    Weight,
    Bmi,
    Marker(Marker),
}

/// Tumour markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Marker {
    Cea,
    Ca15_3,
    Ca27_29,
    Ca19_9,
    Psa,
    Ca125,
    Afp,
}

impl Marker {
    /// (LOINC, display, upper reference limit in the canonical unit, canonical unit, SI unit, decimals).
    fn spec(self) -> (&'static str, &'static str, f64, Unit, Unit) {
        let ngml = |d| unit("ng/mL", "ng/mL", 1.0, d);
        let ugl = |d| unit("ug/L", "ug/L", 1.0, d);
        let uml = |d| unit("U/mL", "U/mL", 1.0, d);
        let kul = |d| unit("kU/L", "kU/L", 1.0, d);
        match self {
            Marker::Cea => ("2039-6", "Carcinoembryonic Ag [Mass/volume] in Serum or Plasma", 5.0, ngml(1), ugl(1)),
            Marker::Ca15_3 => ("6875-9", "Cancer Ag 15-3 [Units/volume] in Serum or Plasma", 30.0, uml(1), kul(1)),
            Marker::Ca27_29 => ("17842-6", "Cancer Ag 27-29 [Units/volume] in Serum or Plasma", 38.0, uml(1), kul(1)),
            Marker::Ca19_9 => ("24108-3", "Cancer Ag 19-9 [Units/volume] in Serum or Plasma", 37.0, uml(1), kul(1)),
            Marker::Psa => ("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", 4.0, ngml(2), ugl(2)),
            Marker::Ca125 => ("10334-1", "Cancer Ag 125 [Units/volume] in Serum or Plasma", 35.0, uml(1), kul(1)),
            Marker::Afp => ("1834-1", "Alpha-1-Fetoprotein [Mass/volume] in Serum or Plasma", 10.0, ngml(1), ugl(1)),
        }
    }
    pub fn uln(self) -> f64 {
        self.spec().2
    }
}

/// How a result is reported: LOINC code and display, category, value in `unit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reported {
    pub loinc: &'static str,
    pub display: &'static str,
    pub vital: bool,
    pub unit: Unit,
}

const CONVENTIONAL: u8 = 0;
const SI: u8 = 1;
const MIXED: u8 = 2;

/// The hospital sites: 0 conventional units, 1 SI units, 2 conventional with IU/L and pounds sometimes.
pub const HOSPITALS: [&str; 3] = ["north", "south", "east"];

fn reporting(lab: Lab, hospital: u8, rng: &mut Rng) -> Reported {
    let lab_r = |loinc, display, unit| Reported { loinc, display, vital: false, unit };
    let ul = unit("U/L", "U/L", 1.0, 0);
    let iul = unit("[IU]/L", "IU/L", 1.0, 0);
    let ukat = unit("ukat/L", "ukat/L", 60.0, 2);
    let enzyme = |rng: &mut Rng| match hospital {
        SI if rng.chance(0.3) => ukat,
        MIXED if rng.chance(0.5) => iul,
        _ => ul,
    };
    match lab {
        Lab::Alp => lab_r("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", enzyme(rng)),
        Lab::Ldh => {
            let u = enzyme(rng);
            if hospital == MIXED {
                lab_r("14804-9", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma by Lactate to pyruvate reaction", u)
            } else {
                lab_r("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", u)
            }
        }
        Lab::Ast => lab_r(
            "1920-8",
            "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
            if hospital == MIXED && rng.chance(0.5) { iul } else { ul },
        ),
        Lab::Alt => lab_r(
            "1742-6",
            "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
            if hospital == MIXED && rng.chance(0.5) { iul } else { ul },
        ),
        Lab::Calcium if hospital == SI => lab_r("2000-8", "Calcium [Moles/volume] in Serum or Plasma", unit("mmol/L", "mmol/L", 4.008, 2)),
        Lab::Calcium => lab_r("17861-6", "Calcium [Mass/volume] in Serum or Plasma", unit("mg/dL", "mg/dL", 1.0, 1)),
        Lab::Albumin => lab_r(
            "1751-7",
            "Albumin [Mass/volume] in Serum or Plasma",
            if hospital == SI { unit("g/L", "g/L", 0.1, 0) } else { unit("g/dL", "g/dL", 1.0, 1) },
        ),
        Lab::Bilirubin if hospital == SI => {
            lab_r("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", unit("umol/L", "umol/L", 0.058479532, 0))
        }
        Lab::Bilirubin => lab_r("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", unit("mg/dL", "mg/dL", 1.0, 1)),
        Lab::Haemoglobin => lab_r(
            "718-7",
            "Hemoglobin [Mass/volume] in Blood",
            if hospital == SI { unit("g/L", "g/L", 0.1, 0) } else { unit("g/dL", "g/dL", 1.0, 1) },
        ),
        Lab::Platelets => lab_r(
            "777-3",
            "Platelets [#/volume] in Blood by Automated count",
            if hospital == SI { unit("10*9/L", "10*9/L", 1.0, 0) } else { unit("10*3/uL", "10*3/uL", 1.0, 0) },
        ),
        Lab::Weight => Reported {
            loinc: "29463-7",
            display: "Body Weight",
            vital: true,
            unit: if hospital == MIXED && rng.chance(0.4) { unit("[lb_av]", "[lb_av]", 0.45359237, 1) } else { unit("kg", "kg", 1.0, 1) },
        },
        Lab::Bmi => {
            Reported { loinc: "39156-5", display: "Body mass index (BMI) [Ratio]", vital: true, unit: unit("kg/m2", "kg/m2", 1.0, 1) }
        }
        Lab::Marker(m) => {
            let (loinc, display, _, conventional, si) = m.spec();
            lab_r(loinc, display, if hospital == SI { si } else { conventional })
        }
    }
}

/// Lower clamps of the canonical values (a value is never zero or negative).
fn floor_of(lab: Lab) -> f64 {
    match lab {
        Lab::Marker(Marker::Psa) => 0.01,
        Lab::Marker(_) => 0.3,
        Lab::Bilirubin => 0.1,
        Lab::Albumin => 1.5,
        Lab::Haemoglobin => 5.0,
        Lab::Calcium => 6.5,
        Lab::Platelets => 20.0,
        _ => 3.0,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Imaging
// ---------------------------------------------------------------------------------------------------------

/// DICOM modality of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Ct,
    Mr,
    Pt,
    Nm,
    Us,
    Dx,
    Mg,
}

impl Modality {
    pub fn code(self) -> &'static str {
        match self {
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Pt => "PT",
            Modality::Nm => "NM",
            Modality::Us => "US",
            Modality::Dx => "DX",
            Modality::Mg => "MG",
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            Modality::Ct => "Computed Tomography",
            Modality::Mr => "Magnetic Resonance",
            Modality::Pt => "Positron emission tomography",
            Modality::Nm => "Nuclear Medicine",
            Modality::Us => "Ultrasound",
            Modality::Dx => "Digital Radiography",
            Modality::Mg => "Mammography",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------------------------------------

/// What a generated event says (one FHIR resource each).
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The cancer diagnosis (eligible primary or not eligible).
    Diagnosis(Coded),
    Metastasis(Coded),
    Finding(Coded),
    /// A stage Observation: LOINC code and display, AJCC code (http://cancerstaging.org) if coded, text.
    Stage {
        loinc: &'static str,
        display: &'static str,
        ajcc: Option<String>,
        text: String,
    },
    /// A measured value in the canonical unit, reported as `report` says.
    Measure {
        lab: Lab,
        value: f64,
        report: Reported,
    },
    /// ECOG 0-5, as valueInteger or as a LOINC answer code.
    Ecog {
        score: u8,
        as_answer: bool,
    },
    Imaging {
        modality: Modality,
        description: &'static str,
        instances: u32,
    },
}

/// One event: when it happened, when it is delivered, what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: EventTime,
    pub delivered: EventTime,
    pub fact: Fact,
}

/// The ground truth of one patient (truth.csv).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// `None` for an ineligible patient.
    pub site: Option<Site>,
    pub stage: Option<u8>,
    pub metastasis: Option<EventTime>,
    pub metastasis_site: Option<MetSite>,
    pub eligible: bool,
    pub diagnosis: EventTime,
    pub follow_up_end: EventTime,
}

/// One simulated patient: demographics, truth, events in event-time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    pub n: u64,
    pub id: String,
    pub key: PatientKey,
    pub sex: Sex,
    pub birth: EventTime,
    pub hospital: u8,
    /// When the Patient resource is delivered (registration, before the diagnosis).
    pub registered: EventTime,
    pub truth: Truth,
    pub events: Vec<Event>,
}

/// Stream numbers of the per-patient random streams.
pub const STREAM_CLINICAL: u64 = 1;
pub const STREAM_FAULTS: u64 = 2;

/// The patient id of patient `n` of cohort `seed`.
pub fn patient_id(seed: u64, n: u64) -> String {
    format!("gen-{seed}-{n}")
}

/// A shape over time (days since diagnosis) with values in about [0, 1].
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// 0 before `start`, rising as ((t - start) / (end - start))^PRODROME_POWER to 1 at `end`, then slowly on.
    Ramp { start: f64, end: f64 },
    /// Rises linearly over `rise` from `start`, holds for `hold`, falls over `rise`.
    Window { start: f64, rise: f64, hold: f64 },
    /// A Gaussian bump.
    Bump { center: f64, width: f64 },
    /// exp(-t / tau) from diagnosis.
    Decay { tau: f64 },
}

impl Shape {
    fn at(self, t: f64) -> f64 {
        match self {
            Shape::Ramp { start, end } => {
                if t <= start {
                    0.0
                } else if t <= end {
                    ((t - start) / (end - start).max(1.0)).powf(PRODROME_POWER)
                } else {
                    (1.0 + (t - end) / 180.0).min(1.5)
                }
            }
            Shape::Window { start, rise, hold } => {
                let rise = rise.max(1.0);
                if t <= start {
                    0.0
                } else if t <= start + rise {
                    (t - start) / rise
                } else if t <= start + rise + hold {
                    1.0
                } else {
                    (1.0 - (t - start - rise - hold) / rise).max(0.0)
                }
            }
            Shape::Bump { center, width } => {
                let z = (t - center) / width.max(1.0);
                (-z * z).exp()
            }
            Shape::Decay { tau } => {
                if t < 0.0 {
                    1.0
                } else {
                    (-t / tau.max(1.0)).exp()
                }
            }
        }
    }
}

/// How an effect changes a value.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// value * (1 + amount * shape)
    Scale,
    /// value + amount * shape
    Add,
    /// value * exp(amount * shape)
    Exp,
}

#[derive(Debug, Clone, Copy)]
struct Effect {
    lab: Option<Lab>,
    /// ECOG effects have `lab: None` and `ecog: true`.
    ecog: bool,
    op: Op,
    amount: f64,
    shape: Shape,
}

/// A patient's baseline of one series and its noise.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    lab: Lab,
    base: f64,
    /// Multiplicative (log-scale) or additive noise.
    noise: f64,
    additive: bool,
    drift: f64,
    period: f64,
    phase: f64,
}

struct Sim<'r> {
    rng: &'r mut Rng,
    dx: EventTime,
    hospital: u8,
    baselines: Vec<Baseline>,
    effects: Vec<Effect>,
    ecog_base: f64,
    height: f64,
    events: Vec<Event>,
}

fn days_to_ms(d: f64) -> i64 {
    (d * MS_PER_DAY as f64).round() as i64
}

impl Sim<'_> {
    /// The instant of day `t` (days since diagnosis, fractional part ignored) at a clinic hour.
    fn clinic_time(&mut self, t: f64) -> EventTime {
        let day = t.floor() as i64;
        let minute = self.rng.int(8 * 60, 16 * 60);
        EventTime(self.dx.0 + day * MS_PER_DAY + minute * 60_000)
    }

    fn push(&mut self, time: EventTime, lag_hours: (f64, f64), fact: Fact) {
        let lag = days_to_ms(self.rng.uniform(lag_hours.0, lag_hours.1) / 24.0);
        self.events.push(Event { time, delivered: EventTime(time.0 + lag), fact });
    }

    fn effect(&mut self, lab: Lab, op: Op, amount: f64, shape: Shape) {
        self.effects.push(Effect { lab: Some(lab), ecog: false, op, amount, shape });
    }

    fn value(&mut self, lab: Lab, t: f64) -> Option<f64> {
        let b = *self.baselines.iter().find(|b| b.lab == lab)?;
        let drift = 1.0 + b.drift * (std::f64::consts::TAU * t / b.period + b.phase).sin();
        let mut v = b.base * drift;
        for e in self.effects.iter().filter(|e| e.lab == Some(lab)) {
            let s = e.shape.at(t);
            v = match e.op {
                Op::Scale => v * (1.0 + e.amount * s),
                Op::Add => v + e.amount * s,
                Op::Exp => v * (e.amount * s).exp(),
            };
        }
        v = if b.additive { v + self.rng.normal(0.0, b.noise) } else { v * (b.noise * self.rng.std_normal()).exp() };
        Some(v.max(floor_of(lab)))
    }

    fn measure(&mut self, lab: Lab, t: f64, time: EventTime, lag: (f64, f64)) {
        let Some(value) = self.value(lab, t) else {
            return;
        };
        let report = reporting(lab, self.hospital, self.rng);
        self.push(time, lag, Fact::Measure { lab, value, report });
    }

    fn ecog(&mut self, t: f64, time: EventTime) {
        let mut s = self.ecog_base;
        for e in self.effects.iter().filter(|e| e.ecog) {
            s += e.amount * e.shape.at(t);
        }
        let mut score = s.round().clamp(0.0, 4.0) as i64;
        if self.rng.chance(P_ECOG_NOISE) {
            score += if self.rng.chance(0.5) { 1 } else { -1 };
        }
        let score = score.clamp(0, 4) as u8;
        let as_answer = self.hospital != CONVENTIONAL;
        self.push(time, (0.5, 6.0), Fact::Ecog { score, as_answer });
    }

    fn imaging(&mut self, t: f64, modality: Modality, description: &'static str) {
        let time = self.clinic_time(t);
        let instances = match modality {
            Modality::Ct | Modality::Mr | Modality::Pt => self.rng.int(80, 600),
            Modality::Nm => self.rng.int(2, 12),
            _ => self.rng.int(1, 6),
        } as u32;
        self.push(time, (1.0, 8.0), Fact::Imaging { modality, description, instances });
    }

    fn finding(&mut self, t: f64, code: Coded) {
        let time = self.clinic_time(t);
        self.push(time, (2.0, 72.0), Fact::Finding(code));
    }

    fn visit(&mut self, t: f64, markers: &[Marker], ldh_rate: f64, at_diagnosis: bool) {
        let time = self.clinic_time(t);
        if !self.rng.chance(P_PANEL_MISSING) {
            let lag = (2.0, 30.0);
            for lab in [Lab::Alp, Lab::Calcium, Lab::Albumin, Lab::Bilirubin, Lab::Ast, Lab::Alt] {
                if !self.rng.chance(P_LAB_MISSING) {
                    self.measure(lab, t, time, lag);
                }
            }
            if self.rng.chance(ldh_rate) {
                self.measure(Lab::Ldh, t, time, lag);
            }
        }
        if !self.rng.chance(P_PANEL_MISSING) {
            for lab in [Lab::Haemoglobin, Lab::Platelets] {
                if !self.rng.chance(P_LAB_MISSING) {
                    self.measure(lab, t, time, (1.0, 8.0));
                }
            }
        }
        for m in markers {
            if at_diagnosis || self.rng.chance(P_MARKER_AT_VISIT) {
                self.measure(Lab::Marker(*m), t, time, (20.0, 96.0));
            }
        }
        if at_diagnosis || self.rng.chance(P_WEIGHT_AT_VISIT) {
            if let Some(w) = self.value(Lab::Weight, t) {
                let report = reporting(Lab::Weight, self.hospital, self.rng);
                self.push(time, (0.1, 4.0), Fact::Measure { lab: Lab::Weight, value: w, report });
                if self.rng.chance(P_BMI_WITH_WEIGHT) {
                    let bmi = w / (self.height * self.height);
                    let report = reporting(Lab::Bmi, self.hospital, self.rng);
                    self.push(time, (0.1, 4.0), Fact::Measure { lab: Lab::Bmi, value: bmi, report });
                }
            }
        }
        if at_diagnosis || self.rng.chance(P_ECOG_AT_VISIT) {
            self.ecog(t, time);
        }
    }
}

fn code_for(rng: &mut Rng, codes: &[PrimaryCode], sex: Sex, hospital: u8) -> (Coded, Option<Marker>) {
    let fits: Vec<&PrimaryCode> = codes
        .iter()
        .filter(|c| match c.sex {
            SexRule::Any => true,
            SexRule::Female => sex == Sex::Female,
            SexRule::Male => sex == Sex::Male,
        })
        .collect();
    // Hospitals lean to one code system: north SNOMED, south ICD-10-CM, east both.
    let p_snomed = [0.8, 0.2, 0.5][usize::from(hospital.min(2))];
    let want = if rng.chance(p_snomed) { SNOMED } else { ICD10CM };
    let preferred: Vec<&PrimaryCode> = fits.iter().copied().filter(|c| c.code.system == want).collect();
    let pool = if preferred.is_empty() { &fits } else { &preferred };
    match rng.choice(pool) {
        Some(c) => (c.code, c.marker),
        // Every table has a code for both sexes; this is only a fallback.
        None => (sct("363346000", "Malignant neoplastic disease"), None),
    }
}

/// TNM for a stage group: (AJCC stage code, roman text, T, N).
fn tnm(rng: &mut Rng, stage: u8) -> (&'static str, &'static str, u8, u8) {
    let options: &[(&str, &str, u8, u8)] = match stage {
        1 => &[("1A", "IA", 1, 0), ("1B", "IB", 2, 0)],
        2 => &[("2A", "IIA", 2, 0), ("2A", "IIA", 1, 1), ("2B", "IIB", 3, 0), ("2B", "IIB", 2, 1)],
        _ => &[("3A", "IIIA", 3, 1), ("3A", "IIIA", 2, 2), ("3B", "IIIB", 4, 1), ("3B", "IIIB", 3, 2), ("3C", "IIIC", 2, 3)],
    };
    rng.choice(options).copied().unwrap_or(("2A", "IIA", 2, 0))
}

fn ymd_days(y: i64, m: u32, d: u32) -> i64 {
    EventTime::from_ymd(y, m, d).0 / MS_PER_DAY
}

/// Simulates patient `n` (1-based) of cohort `seed`.
pub fn simulate(seed: u64, n: u64) -> Story {
    let mut rng = Rng::stream(&[seed, n, STREAM_CLINICAL]);
    let rng = &mut rng;
    let id = patient_id(seed, n);
    let hospital = rng.int(0, 2) as u8;
    let eligible = !rng.chance(INELIGIBLE_SHARE);

    // Site, sex, diagnosis code.
    let (site, sex, diagnosis_code, other_marker) = if eligible {
        let site = rng.pick(&SITE_WEIGHTS).copied().unwrap_or(Site::Other);
        let sex = match site {
            Site::Breast if rng.chance(0.99) => Sex::Female,
            Site::Breast | Site::Prostate => Sex::Male,
            _ if rng.chance(0.5) => Sex::Female,
            _ => Sex::Male,
        };
        let table: &[PrimaryCode] = match site {
            Site::Breast => &BREAST_CODES,
            Site::Colorectal => &COLORECTAL_CODES,
            Site::Lung => &LUNG_CODES,
            Site::Prostate => &PROSTATE_CODES,
            Site::Melanoma => &MELANOMA_CODES,
            Site::Other => &OTHER_CODES,
        };
        let (code, marker) = code_for(rng, table, sex, hospital);
        (Some(site), sex, code, marker)
    } else {
        let sex = if rng.chance(0.5) { Sex::Female } else { Sex::Male };
        let (code, marker) = code_for(rng, &INELIGIBLE_CODES, sex, hospital);
        (None, sex, code, marker)
    };

    // Dates: diagnosis day uniform over 2019-2022, age 30-90.
    let first = ymd_days(2019, 1, 1);
    let last = ymd_days(2022, 12, 31);
    let dx = EventTime(rng.int(first, last) * MS_PER_DAY);
    let age_years = rng.normal(64.0, 11.0).clamp(30.0, 89.0).floor() as i64;
    let birth_day = dx.0 / MS_PER_DAY - age_years * 365 - age_years / 4 - rng.int(1, 360);
    let birth = EventTime(birth_day * MS_PER_DAY);

    let stage = site.map(|_| rng.weighted(&STAGE_WEIGHTS) as u8 + 1);
    let site_factor = site.and_then(|s| METASTASIS_SITE_FACTOR.iter().find(|(x, _)| *x == s)).map_or(1.0, |(_, f)| *f);
    let p_met = stage.map_or(0.0, |s| METASTASIS_BY_STAGE[usize::from(s - 1).min(2)] * site_factor);
    let met_day = if rng.chance(p_met) { Some(rng.uniform(METASTASIS_DAYS.0, METASTASIS_DAYS.1).floor()) } else { None };
    let met_site = match (met_day, site) {
        (Some(_), Some(s)) => rng.pick(&met_site_weights(s)).copied(),
        _ => None,
    };
    let end_day = match met_day {
        Some(m) => m + rng.uniform(AFTER_METASTASIS_DAYS.0, AFTER_METASTASIS_DAYS.1),
        None => rng.uniform(FOLLOW_UP_DAYS.0, FOLLOW_UP_DAYS.1),
    };

    // Baselines (canonical units).
    let female = sex == Sex::Female;
    let weight = if female { rng.normal(70.0, 14.0).clamp(42.0, 140.0) } else { rng.normal(84.0, 15.0).clamp(50.0, 160.0) };
    let height = if female { rng.normal(1.63, 0.07) } else { rng.normal(1.77, 0.07) }.clamp(1.45, 2.05);
    let mut markers: Vec<Marker> = match site {
        Some(Site::Breast) => vec![if rng.chance([0.8, 0.3, 0.5][usize::from(hospital)]) { Marker::Ca15_3 } else { Marker::Ca27_29 }],
        Some(Site::Colorectal) => {
            if rng.chance(0.4) {
                vec![Marker::Cea, Marker::Ca19_9]
            } else {
                vec![Marker::Cea]
            }
        }
        Some(Site::Lung) => vec![Marker::Cea],
        Some(Site::Prostate) => vec![Marker::Psa],
        Some(Site::Melanoma) => vec![],
        Some(Site::Other) | None => other_marker.into_iter().collect(),
    };
    if rng.chance(P_NO_MARKERS) {
        markers.clear();
    }
    let hb = if female { 13.1 } else { 14.4 };
    // (series, baseline, noise, additive noise?)
    let mut specs: Vec<(Lab, f64, f64, bool)> = vec![
        (Lab::Alp, rng.lognormal(75.0, 0.25), 0.08, false),
        (Lab::Ldh, rng.lognormal(180.0, 0.16), 0.09, false),
        (Lab::Calcium, rng.normal(9.4, 0.3), 0.25, true),
        (Lab::Albumin, rng.normal(4.1, 0.3), 0.18, true),
        (Lab::Bilirubin, rng.lognormal(0.6, 0.3), 0.18, false),
        (Lab::Ast, rng.lognormal(23.0, 0.25), 0.15, false),
        (Lab::Alt, rng.lognormal(22.0, 0.35), 0.18, false),
        (Lab::Haemoglobin, rng.normal(hb, 1.1), 0.45, true),
        (Lab::Platelets, rng.lognormal(250.0, 0.2), 0.1, false),
        (Lab::Weight, weight, 0.9, true),
    ];
    for m in &markers {
        specs.push((Lab::Marker(*m), rng.lognormal(0.35 * m.uln(), 0.5), 0.15, false));
    }
    let baselines: Vec<Baseline> = specs
        .into_iter()
        .map(|(lab, base, noise, additive)| Baseline {
            lab,
            base,
            noise,
            additive,
            drift: rng.uniform(0.0, 0.06),
            period: rng.uniform(150.0, 600.0),
            phase: rng.uniform(0.0, std::f64::consts::TAU),
        })
        .collect();
    let ecog_base = *rng.pick(&[(0.0, 0.55), (1.0, 0.35), (2.0, 0.1)]).unwrap_or(&0.0);

    let mut sim = Sim { rng, dx, hospital, baselines, effects: Vec::new(), ecog_base, height, events: Vec::new() };

    // Markers are high at diagnosis (before treatment) and fall to the patient's nadir.
    for m in &markers {
        let amount = sim.rng.uniform(0.0, 1.6);
        let tau = sim.rng.uniform(15.0, 40.0);
        sim.effect(Lab::Marker(*m), Op::Exp, amount, Shape::Decay { tau });
    }

    // Confounders: every patient.
    confounders(&mut sim, &markers, end_day);

    // The metastatic prodrome.
    if let (Some(m), Some(ms)) = (met_day, met_site) {
        prodrome(&mut sim, &markers, site, m, ms);
    }

    // Diagnosis, staging, surveillance.
    let ldh_rate = if site == Some(Site::Melanoma) { 0.85 } else { P_LDH_AT_VISIT };
    let dx_time = sim.clinic_time(0.0);
    sim.push(dx_time, (24.0, 24.0 * 7.0), Fact::Diagnosis(diagnosis_code));
    sim.visit(0.0, &markers, ldh_rate, true);
    if let Some(stage) = stage {
        let t = sim.rng.uniform(3.0, 21.0);
        let time = sim.clinic_time(t);
        let (ajcc, roman, tc, nc) = tnm(sim.rng, stage);
        let coded = sim.rng.chance(0.5);
        let stage_obs = [
            ("21908-9", "Stage group.clinical Cancer", ajcc.to_string(), format!("Stage {roman}")),
            ("21905-5", "Primary tumor.clinical [Class] Cancer", format!("cT{tc}"), format!("cT{tc}")),
            ("21906-3", "Regional lymph nodes.clinical [Class] Cancer", format!("cN{nc}"), format!("cN{nc}")),
            ("21907-1", "Distant metastases.clinical [Class] Cancer", "cM0".to_string(), "cM0".to_string()),
        ];
        for (loinc, display, code, text) in stage_obs {
            let fact = Fact::Stage { loinc, display, ajcc: coded.then_some(code), text };
            sim.push(time, (2.0, 48.0), fact);
        }
        // Staging imaging: CT, PET for lung, bone scan for some breast and prostate.
        let st = sim.rng.uniform(2.0, 20.0);
        sim.imaging(st, Modality::Ct, "CT chest abdomen pelvis with contrast");
        if site == Some(Site::Lung) && stage >= 2 && sim.rng.chance(0.6) {
            let t = st + sim.rng.uniform(2.0, 14.0);
            sim.imaging(t, Modality::Pt, "PET-CT whole body FDG (staging)");
        }
        if matches!(site, Some(Site::Breast | Site::Prostate)) && stage == 3 && sim.rng.chance(0.4) {
            let t = st + sim.rng.uniform(2.0, 14.0);
            sim.imaging(t, Modality::Nm, "Bone scintigraphy whole body (staging)");
        }
    }

    // Follow-up visits.
    let mut interval = sim.rng.uniform(VISIT_INTERVAL_DAYS.0, VISIT_INTERVAL_DAYS.1);
    if stage == Some(3) {
        interval *= 0.85;
    }
    let mut t = sim.rng.uniform(FIRST_VISIT_DAYS.0, FIRST_VISIT_DAYS.1);
    while t <= end_day {
        sim.visit(t, &markers, ldh_rate, false);
        let mut step = interval * sim.rng.uniform(1.0 - VISIT_JITTER, 1.0 + VISIT_JITTER);
        if met_day.is_some_and(|m| t > m - 120.0 && t < m) && sim.rng.chance(0.5) {
            step *= 0.7; // symptoms bring visits forward
        }
        t += step.max(7.0);
    }

    // Surveillance imaging every 3-6 months.
    let prefer_mr = match site {
        Some(Site::Prostate) => 0.4,
        Some(Site::Other) => 0.25,
        _ => 0.12,
    };
    let mut t = sim.rng.uniform(SURVEILLANCE_DAYS.0 * 0.7, SURVEILLANCE_DAYS.1);
    while t <= end_day {
        if sim.rng.chance(prefer_mr) {
            sim.imaging(t, Modality::Mr, "MRI surveillance");
        } else {
            sim.imaging(t, Modality::Ct, "CT chest abdomen pelvis with contrast");
        }
        let mut step = sim.rng.uniform(SURVEILLANCE_DAYS.0, SURVEILLANCE_DAYS.1);
        if stage == Some(3) {
            step *= 0.85;
        }
        t += step;
    }
    if site == Some(Site::Breast) {
        let mut t = sim.rng.uniform(300.0, 420.0);
        while t <= end_day {
            sim.imaging(t, Modality::Mg, "Mammography bilateral");
            t += sim.rng.uniform(330.0, 400.0);
        }
    }

    // Confirmed metastasis.
    if let (Some(m), Some(ms)) = (met_day, met_site) {
        if sim.rng.chance(P_CONFIRM_IMAGING) {
            let t = m - sim.rng.uniform(0.0, 7.0);
            if ms == MetSite::Brain {
                sim.imaging(t, Modality::Mr, "MRI brain with contrast");
            } else {
                sim.imaging(t, Modality::Ct, "CT chest abdomen pelvis with contrast");
            }
        }
        let codes = ms.codes();
        let code = if sim.rng.chance([0.8, 0.2, 0.5][usize::from(hospital)]) { codes[0] } else { codes[1] };
        let time = sim.clinic_time(m);
        sim.push(time, (4.0, 96.0), Fact::Metastasis(code));
    }

    let Sim { events, .. } = sim;
    let mut events = events;
    // Event-time order; ties keep generation order (stable sort).
    events.sort_by_key(|e| e.time);
    let registered = EventTime(dx.0 - days_to_ms(rng_uniform_days(seed, n)));
    let metastasis =
        met_day.map(|m| events.iter().find(|e| matches!(e.fact, Fact::Metastasis(_))).map_or(EventTime(dx.0 + days_to_ms(m)), |e| e.time));
    Story {
        n,
        key: PatientKey::from_id(&id),
        id,
        sex,
        birth,
        hospital,
        registered,
        truth: Truth {
            site,
            stage,
            metastasis,
            metastasis_site: met_site,
            eligible,
            diagnosis: dx,
            follow_up_end: EventTime(dx.0 + days_to_ms(end_day)),
        },
        events,
    }
}

/// Days between registration and diagnosis (own stream, so it does not shift the clinical draws).
fn rng_uniform_days(seed: u64, n: u64) -> f64 {
    Rng::stream(&[seed, n, 3]).uniform(1.0, 30.0)
}

/// Benign events that mimic the prodrome, for every patient.
fn confounders(sim: &mut Sim<'_>, markers: &[Marker], end: f64) {
    let span = end.max(30.0);
    if !markers.is_empty() && sim.rng.chance(P_BENIGN_MARKER_BUMP) {
        let center = sim.rng.uniform(60.0, span);
        let width = sim.rng.uniform(20.0, 70.0);
        let amount = sim.rng.uniform(0.4, 1.7);
        for m in markers {
            sim.effect(Lab::Marker(*m), Op::Exp, amount, Shape::Bump { center, width });
        }
    }
    if sim.rng.chance(P_LIVER_DISEASE) {
        let shape = window(sim.rng, span);
        let a = [
            (Lab::Alp, sim.rng.uniform(0.2, 0.9)),
            (Lab::Ast, sim.rng.uniform(0.4, 2.5)),
            (Lab::Alt, sim.rng.uniform(0.5, 3.0)),
            (Lab::Bilirubin, sim.rng.uniform(0.0, 0.9)),
            (Lab::Ldh, sim.rng.uniform(0.0, 0.4)),
        ];
        for (lab, amount) in a {
            sim.effect(lab, Op::Scale, amount, shape);
        }
        if let Shape::Window { start, rise, .. } = shape {
            if sim.rng.chance(0.2) {
                sim.finding(start + rise, HEPATOMEGALY);
            }
            if sim.rng.chance(0.05) {
                sim.finding(start + rise, JAUNDICE);
            }
        }
    }
    if sim.rng.chance(P_WEIGHT_LOSS_OTHER) {
        let shape = window(sim.rng, span);
        let loss = sim.rng.uniform(0.03, 0.11);
        sim.effect(Lab::Weight, Op::Scale, -loss, shape);
        let alb = sim.rng.uniform(0.0, 0.45);
        sim.effect(Lab::Albumin, Op::Add, -alb, shape);
        if let Shape::Window { start, rise, .. } = shape {
            if sim.rng.chance(0.3) {
                sim.finding(start + rise, WEIGHT_LOSS);
            }
            if sim.rng.chance(0.3) {
                sim.finding(start + rise * 0.5, FATIGUE);
            }
        }
        if sim.rng.chance(0.3) {
            sim.effects.push(Effect { lab: None, ecog: true, op: Op::Add, amount: 1.0, shape });
        }
    }
    if sim.rng.chance(P_ANAEMIA_OTHER) {
        let shape = window(sim.rng, span);
        let drop = sim.rng.uniform(1.0, 3.0);
        sim.effect(Lab::Haemoglobin, Op::Add, -drop, shape);
    }
    if sim.rng.chance(P_BENIGN_HYPERCALCAEMIA) {
        let shape = window(sim.rng, span);
        let rise = sim.rng.uniform(0.5, 1.5);
        sim.effect(Lab::Calcium, Op::Add, rise, shape);
    }
    if sim.rng.chance(P_BENIGN_ALP_RISE) {
        let shape = window(sim.rng, span);
        let rise = sim.rng.uniform(0.3, 1.1);
        sim.effect(Lab::Alp, Op::Scale, rise, shape);
    }
    // Benign symptoms (Poisson by year), with an occasional bone scan for bone pain.
    let years = span / 365.0;
    let count = poisson(sim.rng, BENIGN_SYMPTOMS_PER_YEAR * years);
    for _ in 0..count {
        let t = sim.rng.uniform(5.0, span);
        let code = sim.rng.pick(&BENIGN_SYMPTOMS).copied().unwrap_or(BACKACHE);
        sim.finding(t, code);
        if (code == BONE_PAIN || code == BACKACHE) && sim.rng.chance(0.12) {
            let d = t + sim.rng.uniform(3.0, 30.0);
            sim.imaging(d, Modality::Nm, "Bone scintigraphy whole body");
        }
        if (code == COUGH || code == DYSPNOEA) && sim.rng.chance(0.3) {
            let d = t + sim.rng.uniform(0.0, 10.0);
            sim.imaging(d, Modality::Dx, "Chest radiograph");
        }
    }
    if sim.rng.chance(P_INCIDENTAL_WORKUP) {
        let t = sim.rng.uniform(30.0, span);
        sim.imaging(t, Modality::Ct, "CT chest abdomen pelvis (indeterminate finding)");
        if sim.rng.chance(P_INCIDENTAL_PET) {
            let d = t + sim.rng.uniform(7.0, 35.0);
            sim.imaging(d, Modality::Pt, "PET-CT whole body FDG");
        }
        if sim.rng.chance(0.4) {
            let d = t + sim.rng.uniform(40.0, 100.0);
            sim.imaging(d, Modality::Ct, "CT follow-up of indeterminate finding");
        }
    }
    let adhoc = poisson(sim.rng, ADHOC_IMAGING_PER_YEAR * years);
    for _ in 0..adhoc {
        let t = sim.rng.uniform(5.0, span);
        if sim.rng.chance(0.55) {
            sim.imaging(t, Modality::Us, "Ultrasound abdomen");
        } else {
            sim.imaging(t, Modality::Dx, "Radiograph");
        }
    }
}

fn window(rng: &mut Rng, span: f64) -> Shape {
    Shape::Window { start: rng.uniform(0.0, span), rise: rng.uniform(30.0, 150.0), hold: rng.uniform(30.0, 300.0) }
}

fn poisson(rng: &mut Rng, lambda: f64) -> u32 {
    // Knuth's method: fine for the small rates used here.
    let l = (-lambda.max(0.0)).exp();
    let mut k = 0u32;
    let mut p = 1.0;
    loop {
        p *= rng.f64();
        if p <= l || k >= 1000 {
            return k;
        }
        k += 1;
    }
}

/// The noisy signals before a metastasis at day `met` of site `ms`.
fn prodrome(sim: &mut Sim<'_>, markers: &[Marker], site: Option<Site>, met: f64, ms: MetSite) {
    let length = sim.rng.uniform(PRODROME_DAYS.0, PRODROME_DAYS.1);
    let start = met - length;
    let ramp = Shape::Ramp { start, end: met };
    let vis = if sim.rng.chance(SILENT_SHARE) { sim.rng.uniform(0.0, 0.25) } else { sim.rng.uniform(0.5, 1.2) } * SIGNAL_STRENGTH;
    if !markers.is_empty() && sim.rng.chance(P_MARKER_SIGNAL) {
        let k = sim.rng.uniform(0.6, 2.2) * vis;
        for m in markers {
            let k_m = k * sim.rng.uniform(0.6, 1.1);
            sim.effect(Lab::Marker(*m), Op::Exp, k_m, ramp);
        }
    }
    if sim.rng.chance(P_LAB_SIGNAL) {
        match ms {
            MetSite::Bone => {
                let a = sim.rng.uniform(0.3, 1.4) * vis;
                sim.effect(Lab::Alp, Op::Scale, a, ramp);
                if sim.rng.chance(0.5) {
                    let c = sim.rng.uniform(0.3, 1.3) * vis;
                    sim.effect(Lab::Calcium, Op::Add, c, ramp);
                }
            }
            MetSite::Liver => {
                let a = sim.rng.uniform(0.3, 1.2) * vis;
                sim.effect(Lab::Alp, Op::Scale, a, ramp);
                for (lab, hi) in [(Lab::Bilirubin, 2.0), (Lab::Ast, 1.3), (Lab::Alt, 1.1), (Lab::Ldh, 0.9)] {
                    if sim.rng.chance(0.6) {
                        let x = sim.rng.uniform(0.2, hi) * vis;
                        sim.effect(lab, Op::Scale, x, ramp);
                    }
                }
            }
            MetSite::Lung | MetSite::Brain => {
                if sim.rng.chance(0.5) {
                    let x = sim.rng.uniform(0.1, 0.6) * vis;
                    sim.effect(Lab::Ldh, Op::Scale, x, ramp);
                }
            }
        }
        if site == Some(Site::Melanoma) {
            let x = sim.rng.uniform(0.2, 1.0) * vis;
            sim.effect(Lab::Ldh, Op::Scale, x, ramp);
        }
    }
    if sim.rng.chance(P_WASTING_SIGNAL) {
        let w = sim.rng.uniform(0.02, 0.08) * vis;
        sim.effect(Lab::Weight, Op::Scale, -w, ramp);
        let a = sim.rng.uniform(0.1, 0.6) * vis;
        sim.effect(Lab::Albumin, Op::Add, -a, ramp);
        let h = sim.rng.uniform(0.4, 1.8) * vis;
        sim.effect(Lab::Haemoglobin, Op::Add, -h, ramp);
    }
    if sim.rng.chance(P_ECOG_SIGNAL) {
        let e = sim.rng.uniform(0.3, 1.6) * vis;
        sim.effects.push(Effect { lab: None, ecog: true, op: Op::Add, amount: e, shape: ramp });
    }
    // Symptoms in the later part of the prodrome.
    for (code, weight) in met_symptoms(ms) {
        if sim.rng.chance((P_SYMPTOM * weight * vis / SIGNAL_STRENGTH).min(0.9)) {
            let t = (met - length * sim.rng.uniform(0.0, 0.7)).max(1.0);
            sim.finding(t, *code);
        }
    }
    if ms == MetSite::Bone && sim.rng.chance(P_FRACTURE) {
        let t = (met - sim.rng.uniform(0.0, 30.0)).max(1.0);
        sim.finding(t, PATH_FRACTURE);
    }
    if sim.rng.chance(P_EXTRA_CT * vis / SIGNAL_STRENGTH) {
        let t = (met - length * sim.rng.uniform(0.1, 0.6)).max(1.0);
        sim.imaging(t, Modality::Ct, "CT chest abdomen pelvis (symptoms)");
    }
    if sim.rng.chance(P_PET_WORKUP) {
        let t = (met - sim.rng.uniform(3.0, 30.0)).max(1.0);
        if ms == MetSite::Bone && sim.rng.chance(0.5) {
            sim.imaging(t, Modality::Nm, "Bone scintigraphy whole body");
        } else {
            sim.imaging(t, Modality::Pt, "PET-CT whole body FDG");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_story_and_patients_independent_of_cohort_size() {
        assert_eq!(simulate(7, 3), simulate(7, 3));
        assert_ne!(simulate(7, 3), simulate(8, 3));
    }

    #[test]
    fn metastatic_patients_have_a_metastasis_event_on_their_date() {
        let mut seen = 0;
        for n in 1..400 {
            let s = simulate(1, n);
            if let Some(m) = s.truth.metastasis {
                seen += 1;
                assert!(s.truth.eligible);
                assert!(s.events.iter().any(|e| matches!(e.fact, Fact::Metastasis(_)) && e.time == m));
            }
            assert!(s.events.windows(2).all(|w| w[0].time <= w[1].time));
        }
        assert!(seen > 20, "{seen}");
    }
}
