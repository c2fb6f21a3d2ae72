//! `PatientState`: the small, bounded state oncowatch keeps per patient, and its binary encoding.
//!
//! Owns applying an event (idempotent for the same version, replacing for a newer one, removing for a
//! retraction, leaving a tombstone when a retraction arrives first), the bounds that keep a patient under
//! about a kilobyte however long the history, and the versioned binary form written to the changelog.
//!
//! Events are kept sorted by (event time, resource) whatever their arrival order, so without retractions
//! the state after a set of events does not depend on the order they arrived in. Bounds drop the oldest
//! points of a kind first; what they drop is summarised (a series keeps the minimum ever seen, for nadirs).
//! A repeat of a point the bounds already dropped cannot be told from a new old point: it is applied to
//! the summaries only (a minimum, so still idempotent).

use super::event::{ClinicalEvent, Comparator, Fact};
use super::identity::{EventTime, PatientKey, ResourceId, ResourceKind, ResourceVersion};
use super::reason::IgnoreReason;
use super::vocabulary::{FindingGroup, ImagingGroup, SeriesId, Site, StageAxis};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Format version of the binary encoding; bumped on any change to the encoded types.
pub const STATE_FORMAT_VERSION: u8 = 1;

/// Points kept per measured series (most recent by event time).
pub const SERIES_POINTS: usize = 6;
/// Imaging studies kept (most recent), enough for a 90-day count against a prior 365-day rate.
pub const IMAGING_POINTS: usize = 24;
/// Findings kept (most recent).
pub const FINDING_POINTS: usize = 12;
/// Stage, ECOG and diagnosis points kept per kind.
pub const OTHER_POINTS: usize = 4;
/// Recent event times kept for activity features.
pub const ACTIVITY_POINTS: usize = 16;
/// Resource ids kept for alert bases.
pub const RECENT_IDS: usize = 6;
/// Tombstones kept for retractions that arrived before what they retract.
pub const TOMBSTONES: usize = 32;

/// Compact, ordered form of a resource version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionStamp {
    /// Numeric `meta.versionId`.
    Num(u64),
    /// Non-numeric `meta.versionId` (hash: equality only; a different one counts as newer).
    Text(u64),
    /// `meta.lastUpdated` in ms.
    Updated(i64),
    /// No version: arrival order.
    Arrival,
}

impl VersionStamp {
    pub fn of(v: &ResourceVersion) -> Self {
        match v {
            ResourceVersion::Id(s) => match s.parse::<u64>() {
                Ok(n) => VersionStamp::Num(n),
                Err(_) => VersionStamp::Text(super::identity::fnv1a(&[s.as_bytes()])),
            },
            ResourceVersion::Updated(t) => VersionStamp::Updated(*t),
            ResourceVersion::Arrival => VersionStamp::Arrival,
        }
    }
    /// Order of `self` (arriving) against `applied`; `None` means "treat as newer".
    fn compare(self, applied: VersionStamp) -> Option<Ordering> {
        match (self, applied) {
            (VersionStamp::Num(a), VersionStamp::Num(b)) => Some(a.cmp(&b)),
            (VersionStamp::Updated(a), VersionStamp::Updated(b)) => Some(a.cmp(&b)),
            (VersionStamp::Text(a), VersionStamp::Text(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }
}

/// What one point says (the state's compact form of a `Fact`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum PointKind {
    Measurement {
        series: SeriesId,
        value: f32,
        bound: i8,
    },
    Stage {
        axis: StageAxis,
        value: u8,
    },
    Ecog(u8),
    Primary(Site),
    NotEligible,
    Metastasis,
    Finding(FindingGroup),
    /// Bit set of imaging groups: 1 = CT/MR, 2 = PET/NM, 4 = other.
    Imaging(u8),
}

impl PointKind {
    /// Which bounded bucket the point belongs to.
    fn bucket(&self) -> (u8, u16) {
        match self {
            PointKind::Measurement { series, .. } => (0, series.0),
            PointKind::Stage { axis, .. } => (1, *axis as u16),
            PointKind::Ecog(_) => (2, 0),
            PointKind::Primary(_) => (3, 0),
            PointKind::NotEligible => (4, 0),
            PointKind::Metastasis => (5, 0),
            PointKind::Finding(_) => (6, 0),
            PointKind::Imaging(_) => (7, 0),
        }
    }
    fn cap(&self) -> usize {
        match self {
            PointKind::Measurement { .. } => SERIES_POINTS,
            PointKind::Finding(_) => FINDING_POINTS,
            PointKind::Imaging(_) => IMAGING_POINTS,
            _ => OTHER_POINTS,
        }
    }
}

/// One contribution of one resource version at one event time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub time: EventTime,
    /// 32-bit hash of the resource identity (type, id): enough to tell one patient's resources apart.
    pub res: u32,
    pub version: VersionStamp,
    pub kind: PointKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Tombstone {
    res: u32,
    version: VersionStamp,
}

/// Demographics from the Patient resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Demographics {
    pub birth: Option<EventTime>,
    pub female: Option<bool>,
    pub deceased: bool,
    version: Option<VersionStamp>,
}

/// Alert-policy state of one patient (tiers, episodes, cooldowns). It lives here so that it travels with
/// the patient through the changelog and survives a model upgrade.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    /// Current tier (0 = none, 1 = watch, 2 = high, 3 = urgent).
    pub tier: u8,
    /// Episode number (0 before the first episode).
    pub episode: u32,
    pub in_episode: bool,
    /// Event time the probability last stood at or above the lowest tier's exit level.
    pub last_above: Option<EventTime>,
    /// The latest alerts issued (bounded), for cooldowns and withdrawal.
    pub alerts: Vec<IssuedAlert>,
}

/// An alert the policy issued, kept to enforce cooldowns and to withdraw it if its evidence is retracted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedAlert {
    pub tier: u8,
    pub episode: u32,
    pub time: EventTime,
    pub withdrawn: bool,
    /// false when backfill suppressed it: it was never published, so it is never withdrawn either.
    pub published: bool,
    pub probability: f32,
    /// Resource hashes of the alert's basis, to tell whether a retraction touches its evidence.
    pub basis: Vec<u32>,
}

/// Everything the model and the alert policy need about one patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientState {
    pub key: PatientKey,
    pub demographics: Demographics,
    /// Sorted by (time, res, kind bucket).
    points: Vec<Point>,
    /// Per series: the minimum value among points dropped by the bounds (for nadirs).
    dropped_min: Vec<(SeriesId, f32)>,
    tombstones: Vec<Tombstone>,
    /// Ids of the latest retained resources (bounded), so an alert's basis can name its evidence.
    recent: Vec<(u32, String)>,
    /// Latest event time applied (the "as of" of scoring).
    pub latest: Option<EventTime>,
    pub policy: PolicyState,
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyResult {
    Applied,
    Ignored(IgnoreReason),
}

/// The 32-bit resource hash that points carry.
pub fn res_hash(r: &ResourceId) -> u32 {
    let h = r.hash64();
    (h ^ (h >> 32)) as u32
}

fn point_kind(f: &Fact) -> Option<PointKind> {
    Some(match f {
        Fact::Measurement { series, value, comparator } => {
            let bound = match comparator {
                None => 0,
                Some(Comparator::Less | Comparator::LessOrEqual) => -1,
                Some(Comparator::Greater | Comparator::GreaterOrEqual) => 1,
            };
            PointKind::Measurement { series: *series, value: *value as f32, bound }
        }
        Fact::Stage { axis, value } => PointKind::Stage { axis: *axis, value: *value },
        Fact::Ecog(v) => PointKind::Ecog(*v),
        Fact::Primary(s) => PointKind::Primary(*s),
        Fact::NotEligible => PointKind::NotEligible,
        Fact::Metastasis => PointKind::Metastasis,
        Fact::Finding(g) => PointKind::Finding(*g),
        Fact::Imaging(groups) => {
            let mut bits = 0u8;
            for g in groups {
                bits |= match g {
                    ImagingGroup::CtMr => 1,
                    ImagingGroup::PetNm => 2,
                    ImagingGroup::Other => 4,
                };
            }
            PointKind::Imaging(bits)
        }
        Fact::Demographics { .. } | Fact::Retraction => return None,
    })
}

impl PatientState {
    pub fn new(key: PatientKey) -> Self {
        PatientState {
            key,
            demographics: Demographics::default(),
            points: Vec::new(),
            dropped_min: Vec::new(),
            tombstones: Vec::new(),
            recent: Vec::new(),
            latest: None,
            policy: PolicyState::default(),
        }
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Minimum value of a series among dropped points.
    pub fn dropped_min(&self, s: SeriesId) -> Option<f32> {
        self.dropped_min.iter().find(|(id, _)| *id == s).map(|(_, v)| *v)
    }

    /// Applies one event; see the module docs for the rules.
    pub fn apply(&mut self, ev: &ClinicalEvent) -> ApplyResult {
        let version = VersionStamp::of(&ev.version);
        if ev.resource.kind == ResourceKind::Patient {
            return self.apply_demographics(ev, version);
        }
        let res = res_hash(&ev.resource);
        // The version currently applied for this resource, live or tombstoned.
        let applied = self
            .points
            .iter()
            .find(|p| p.res == res)
            .map(|p| (p.version, true))
            .or_else(|| self.tombstones.iter().find(|t| t.res == res).map(|t| (t.version, false)));
        if let Some((applied_version, live)) = applied {
            match version.compare(applied_version) {
                Some(Ordering::Equal) => return ApplyResult::Ignored(IgnoreReason::Duplicate),
                Some(Ordering::Less) => return ApplyResult::Ignored(IgnoreReason::StaleVersion),
                // A retraction without a version of its own blocks whatever arrives for it later.
                None if !live && applied_version == VersionStamp::Arrival => return ApplyResult::Ignored(IgnoreReason::StaleVersion),
                _ => {}
            }
        }
        self.points.retain(|p| p.res != res);
        self.tombstones.retain(|t| t.res != res);
        self.recent.retain(|(r, _)| *r != res);
        if let Some(t) = ev.time {
            self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
        }
        match point_kind(&ev.fact) {
            None => {
                // Retraction: keep a tombstone so a late original (or older version) is not applied.
                self.tombstones.push(Tombstone { res, version });
                if self.tombstones.len() > TOMBSTONES {
                    self.tombstones.remove(0);
                }
            }
            Some(kind) => {
                let Some(time) = ev.time else {
                    return ApplyResult::Ignored(IgnoreReason::NoValue);
                };
                let p = Point { time, res, version, kind };
                let at = self.points.partition_point(|q| (q.time, q.res) < (p.time, p.res));
                self.points.insert(at, p);
                self.enforce_bounds(kind);
                self.recent.retain(|(r, _)| *r != res);
                if self.points.iter().any(|q| q.res == res) {
                    self.recent.push((res, ev.resource.reference()));
                    if self.recent.len() > RECENT_IDS {
                        self.recent.remove(0);
                    }
                }
            }
        }
        ApplyResult::Applied
    }

    fn apply_demographics(&mut self, ev: &ClinicalEvent, version: VersionStamp) -> ApplyResult {
        if let Some(applied) = self.demographics.version {
            match version.compare(applied) {
                Some(Ordering::Equal) => return ApplyResult::Ignored(IgnoreReason::Duplicate),
                Some(Ordering::Less) => return ApplyResult::Ignored(IgnoreReason::StaleVersion),
                _ => {}
            }
        }
        match &ev.fact {
            Fact::Demographics { birth, female, deceased } => {
                self.demographics = Demographics { birth: *birth, female: *female, deceased: *deceased, version: Some(version) };
            }
            Fact::Retraction => self.demographics = Demographics { version: Some(version), ..Demographics::default() },
            _ => {}
        }
        ApplyResult::Applied
    }

    /// Drops the oldest points of the bucket over its cap, remembering dropped series minima.
    fn enforce_bounds(&mut self, kind: PointKind) {
        let bucket = kind.bucket();
        let cap = kind.cap();
        let count = self.points.iter().filter(|p| p.kind.bucket() == bucket).count();
        if count <= cap {
            return;
        }
        let mut to_drop = count - cap;
        let mut i = 0;
        while i < self.points.len() && to_drop > 0 {
            if self.points[i].kind.bucket() == bucket {
                let p = self.points.remove(i);
                if let PointKind::Measurement { series, value, .. } = p.kind {
                    match self.dropped_min.iter_mut().find(|(s, _)| *s == series) {
                        Some((_, m)) => *m = m.min(value),
                        None => {
                            self.dropped_min.push((series, value));
                            self.dropped_min.sort_by_key(|(s, _)| *s);
                        }
                    }
                }
                to_drop -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// The reference (`Type/id`) of a retained resource, when it is among the latest few.
    pub fn reference_of(&self, res: u32) -> Option<&str> {
        self.recent.iter().find(|(r, _)| *r == res).map(|(_, id)| id.as_str())
    }

    /// Points at or before `as_of`, oldest first.
    pub fn points_until(&self, as_of: EventTime) -> impl Iterator<Item = &Point> {
        self.points.iter().take_while(move |p| p.time <= as_of)
    }

    /// The primary site and diagnosis time (earliest primary point), if any.
    pub fn primary(&self, as_of: EventTime) -> Option<(Site, EventTime)> {
        self.points_until(as_of).find_map(|p| match p.kind {
            PointKind::Primary(s) => Some((s, p.time)),
            _ => None,
        })
    }

    /// Time of the first confirmed metastasis (a secondary malignancy, or an M1 category, or stage IV).
    pub fn metastasis(&self, as_of: EventTime) -> Option<EventTime> {
        self.points_until(as_of)
            .find(|p| {
                matches!(
                    p.kind,
                    PointKind::Metastasis
                        | PointKind::Stage { axis: StageAxis::M, value: 1 }
                        | PointKind::Stage { axis: StageAxis::Group, value: 4 }
                )
            })
            .map(|p| p.time)
    }

    /// Age in years at `t`, when the birth date is known.
    pub fn age_at(&self, t: EventTime) -> Option<f64> {
        self.demographics.birth.map(|b| t.days_since(b) / 365.25)
    }

    /// Eligible for scoring at `t`: an adult with an eligible primary, no confirmed metastasis, alive.
    pub fn eligible(&self, t: EventTime) -> bool {
        self.primary(t).is_some()
            && self.metastasis(t).is_none()
            && !self.demographics.deceased
            && self.age_at(t).is_some_and(|a| a >= 18.0)
    }

    /// Encodes the state: one format byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_FORMAT_VERSION];
        // Encoding plain data into a Vec cannot fail.
        if let Ok(body) = postcard::to_stdvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Decodes a state written by [`encode`](Self::encode), refusing other format versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let (v, body) = bytes.split_first().ok_or(StateError::Empty)?;
        if *v != STATE_FORMAT_VERSION {
            return Err(StateError::Version(*v));
        }
        postcard::from_bytes(body).map_err(|e| StateError::Corrupt(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("state record is empty")]
    Empty,
    #[error("state format version {0} is not readable by this build (it reads {STATE_FORMAT_VERSION})")]
    Version(u8),
    #[error("state record is corrupt: {0}")]
    Corrupt(String),
}
