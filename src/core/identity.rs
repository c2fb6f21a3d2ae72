//! Identity and time: who an event is about, when it happened, and which version of which resource it is.
//!
//! Owns `PatientKey` (the canonical `Patient/<id>` string), `Pseudonym` (the keyed hash that is the only
//! patient identifier allowed in logs, metrics and output keys), `EventTime`, `ResourceId` and
//! `ResourceVersion`, and the parsing of FHIR references into patient keys.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::cmp::Ordering;
use std::fmt;

/// Canonical patient key: `Patient/<id>`, or `Patient?identifier=<system>|<value>` for a patient known only by
/// a business identifier. Never logged: use its [`Pseudonym`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PatientKey(String);

impl PatientKey {
    pub fn from_id(id: &str) -> Self {
        PatientKey(format!("Patient/{id}"))
    }
    pub fn from_identifier(system: &str, value: &str) -> Self {
        PatientKey(format!("Patient?identifier={system}|{value}"))
    }
    /// Accepts an already canonical key (e.g. a Kafka record key); `None` when it is not one.
    pub fn parse_canonical(s: &str) -> Option<Self> {
        match parse_reference(s) {
            RefTarget::Patient(id) => Some(PatientKey::from_id(&id)),
            _ if s.starts_with("Patient?identifier=") => Some(PatientKey(s.to_string())),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keyed pseudonym of a patient: HMAC-SHA-256 of the canonical key, first 16 bytes as 32 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The development pseudonym key used by `replay`, `generate` and `demo` when none is configured;
/// `run` refuses to start with it.
pub const DEVELOPMENT_PSEUDONYM_KEY: &str = "oncowatch-development-key-not-for-production";

/// Computes pseudonyms under one secret key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Pseudonymizer { mac }
    }
    pub fn pseudonym(&self, key: &PatientKey) -> Pseudonym {
        let mut mac = self.mac.clone();
        mac.update(key.as_str().as_bytes());
        let out = mac.finalize().into_bytes();
        Pseudonym(hex::encode(&out[..16]))
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(****)")
    }
}

/// A UTC instant in event time, milliseconds since the Unix epoch. The core never reads the wall clock:
/// every `EventTime` comes from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventTime(pub i64);

pub const MS_PER_DAY: i64 = 86_400_000;

impl EventTime {
    pub fn days_since(self, earlier: EventTime) -> f64 {
        (self.0 - earlier.0) as f64 / MS_PER_DAY as f64
    }
    pub fn minus_days(self, days: i64) -> EventTime {
        EventTime(self.0.saturating_sub(days.saturating_mul(MS_PER_DAY)))
    }
    pub fn plus_days(self, days: i64) -> EventTime {
        EventTime(self.0.saturating_add(days.saturating_mul(MS_PER_DAY)))
    }
    /// RFC 3339 in UTC with seconds, e.g. `2021-05-03T10:00:00Z` (FHIR dateTime and instant compatible).
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
    }
    /// `YYYY-MM-DD` in UTC.
    pub fn to_date(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(1000).div_euclid(86_400));
        format!("{y:04}-{m:02}-{d:02}")
    }
    /// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC only; for command-line arguments).
    pub fn parse_utc(s: &str) -> Option<EventTime> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            s.get(r).filter(|x| x.bytes().all(|c| c.is_ascii_digit())).and_then(|x| x.parse().ok())
        };
        if b.len() != 10 && !(b.len() == 20 && b[10] == b'T' && b[19] == b'Z') {
            return None;
        }
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let mut t = EventTime::from_ymd(y, m as u32, d as u32).0;
        if b.len() == 20 {
            let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
            if hh > 23 || mm > 59 || ss > 60 || b[13] != b':' || b[16] != b':' {
                return None;
            }
            t += ((hh * 60 + mm) * 60 + ss) * 1000;
        }
        Some(EventTime(t))
    }

    pub fn from_ymd(y: i64, m: u32, d: u32) -> EventTime {
        EventTime(days_from_civil(y, m, d) * MS_PER_DAY)
    }
}

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar, no clock involved.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The resource types oncowatch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    Observation,
    Condition,
    ImagingStudy,
    Patient,
}

impl ResourceKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Observation" => Some(Self::Observation),
            "Condition" => Some(Self::Condition),
            "ImagingStudy" => Some(Self::ImagingStudy),
            "Patient" => Some(Self::Patient),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observation => "Observation",
            Self::Condition => "Condition",
            Self::ImagingStudy => "ImagingStudy",
            Self::Patient => "Patient",
        }
    }
}

/// Identity of a resource: (type, id). The id is `id`, else the entry's fullUrl, else a content hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId {
    pub kind: ResourceKind,
    pub id: String,
}

impl ResourceId {
    /// Reference string, e.g. `Observation/123`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.id)
    }
    /// Stable 64-bit hash (FNV-1a) of the identity, used where state keeps resources compactly.
    pub fn hash64(&self) -> u64 {
        fnv1a(&[self.kind.as_str().as_bytes(), b"/", self.id.as_bytes()])
    }
}

/// FNV-1a 64 over byte slices: stable across runs and platforms (unlike std's `DefaultHasher`).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Version of a resource: `meta.versionId`, else `meta.lastUpdated`, else arrival order (always newest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceVersion {
    Id(String),
    Updated(i64),
    Arrival,
}

impl ResourceVersion {
    /// Order of two versions of one resource; `None` means "treat as newer" (arrival order).
    pub fn compare(&self, applied: &ResourceVersion) -> Option<Ordering> {
        match (self, applied) {
            (ResourceVersion::Id(a), ResourceVersion::Id(b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(x), Ok(y)) => Some(x.cmp(&y)),
                _ => Some(a.cmp(b)),
            },
            (ResourceVersion::Updated(a), ResourceVersion::Updated(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
    /// Compact stamp for state: a hash of the version, and its order key where it has one.
    pub fn stamp(&self) -> u64 {
        match self {
            ResourceVersion::Id(s) => fnv1a(&[b"v:", s.as_bytes()]),
            ResourceVersion::Updated(t) => fnv1a(&[b"u:", &t.to_le_bytes()]),
            ResourceVersion::Arrival => 0,
        }
    }
}

/// What a FHIR reference string points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    /// A Patient, by logical id.
    Patient(String),
    /// `urn:uuid:` / `urn:oid:` to resolve through the Bundle's fullUrls (the full urn).
    Urn(String),
    /// Some other resource type (Group, Device, Location…).
    Other(String),
    /// A contained (`#x`) or unparseable reference.
    Unusable,
}

/// Parses `Patient/123`, `https://host/fhir/Patient/123`, either with `/_history/n`, `urn:uuid:…`.
pub fn parse_reference(r: &str) -> RefTarget {
    let r = r.trim();
    if r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
        return RefTarget::Urn(r.to_string());
    }
    if r.is_empty() || r.starts_with('#') {
        return RefTarget::Unusable;
    }
    let path = r.split(['?', '#']).next().unwrap_or(r);
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() >= 4 && segs[segs.len() - 2] == "_history" {
        segs.truncate(segs.len() - 2);
    }
    if segs.len() < 2 {
        return RefTarget::Unusable;
    }
    let ty = segs[segs.len() - 2];
    let id = segs[segs.len() - 1];
    let type_like = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && ty.chars().all(|c| c.is_ascii_alphanumeric());
    if !type_like || !valid_id(id) {
        return RefTarget::Unusable;
    }
    if ty == "Patient" {
        RefTarget::Patient(id.to_string())
    } else {
        RefTarget::Other(ty.to_string())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_to_patient_key() {
        assert_eq!(parse_reference("Patient/123"), RefTarget::Patient("123".into()));
        assert_eq!(parse_reference("https://h.example/fhir/Patient/123/_history/4"), RefTarget::Patient("123".into()));
        assert_eq!(parse_reference("Group/7"), RefTarget::Other("Group".into()));
        assert_eq!(parse_reference("urn:uuid:abc"), RefTarget::Urn("urn:uuid:abc".into()));
        assert_eq!(parse_reference("#p1"), RefTarget::Unusable);
    }

    #[test]
    fn pseudonym_is_keyed_and_32_hex() {
        let k = PatientKey::from_id("1");
        let a = Pseudonymizer::new(b"a").pseudonym(&k);
        let b = Pseudonymizer::new(b"b").pseudonym(&k);
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn dates_round_trip() {
        let t = EventTime::from_ymd(2021, 5, 3);
        assert_eq!(t.to_rfc3339(), "2021-05-03T00:00:00Z");
        assert_eq!(EventTime::from_ymd(1969, 12, 31).to_date(), "1969-12-31");
    }

    #[test]
    fn numeric_versions_compare_numerically() {
        let a = ResourceVersion::Id("10".into());
        let b = ResourceVersion::Id("9".into());
        assert_eq!(a.compare(&b), Some(Ordering::Greater));
    }
}
