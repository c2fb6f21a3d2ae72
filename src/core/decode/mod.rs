//! Decode: the bytes of one record (a resource or a Bundle) to `ClinicalEvent`s, with an outcome for every
//! resource in it.
//!
//! Owns the record-level rules of DESIGN.md "Decode": size limit, JSON and `resourceType` checks, Bundle
//! walking (every Bundle type, nesting up to depth 4, DELETE entries), resolving each resource's patient
//! through the Bundle's `fullUrl`s and identifiers, and the accounting of what is not an event.
//! Architecture invariant: every resource yields exactly one [`Decoded`]; nothing here panics on any input.
//! A Bundle is split into borrowed raw entries first, so each entry is typed-decoded once and alone, and a
//! bad entry rejects only itself.

// `Decoded` doubles as the error side of the stage helpers; it is moved once per resource, so its size
// costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod resource;
mod stage;

use super::event::{ClinicalEvent, Fact};
use super::identity::{fnv1a, parse_reference, PatientKey, RefTarget, ResourceId, ResourceKind, ResourceVersion};
use super::reason::{IgnoreReason, RejectReason};
use super::vocabulary::Vocabulary;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

/// Deepest Bundle nesting read; a Bundle below it is one resource rejected `too_deep`.
pub const MAX_BUNDLE_DEPTH: usize = 4;

/// Decode options that come from configuration or from the record's envelope.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Records over this size are one resource rejected `too_large`.
    pub max_record_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { max_record_bytes: 8 * 1024 * 1024 }
    }
}

/// The result of decoding one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(ClinicalEvent),
    Ignored(IgnoreReason, String),
    Rejected(RejectReason, String),
}

/// One resource of a record, with where it sat.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedResource {
    /// Bundle entry index path (`3`, or `3/0` in a nested Bundle); `None` for a top-level resource.
    pub entry: Option<String>,
    pub resource_type: Option<String>,
    pub decoded: Decoded,
}

/// Decodes one record. `record_key` is the patient the record is keyed by, when input is keyed by patient
/// (it gives DELETE entries their patient).
pub fn decode_record(bytes: &[u8], vocab: &Vocabulary, opts: &DecodeOptions, record_key: Option<&PatientKey>) -> Vec<DecodedResource> {
    let top = |resource_type: Option<String>, decoded: Decoded| vec![DecodedResource { entry: None, resource_type, decoded }];
    if bytes.len() > opts.max_record_bytes {
        let msg = format!("record is {} bytes, over input.max_record_bytes = {}", bytes.len(), opts.max_record_bytes);
        return top(None, Decoded::Rejected(RejectReason::TooLarge, msg));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return top(None, Decoded::Rejected(RejectReason::InvalidJson, format!("record is not UTF-8: {e}"))),
    };
    let head = match peek(text) {
        Ok(h) => h,
        Err(d) => return top(None, d),
    };
    let mut ctx = Ctx { vocab, record_key, out: Vec::new() };
    let raw = text.trim();
    if head.resource_type == "Bundle" {
        ctx.bundle(raw, head.entry, 1, None, None);
    } else {
        let scope = Scope::default();
        let decoded = ctx.resource(&head.resource_type, raw, None, &scope);
        ctx.out.push(DecodedResource { entry: None, resource_type: Some(head.resource_type.into_owned()), decoded });
    }
    ctx.out
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

struct Peeked<'a> {
    resource_type: Cow<'a, str>,
    entry: Option<&'a RawValue>,
}

/// Reads `resourceType` (and a Bundle's raw `entry` array) in one pass, without a typed decode.
fn peek(text: &str) -> Result<Peeked<'_>, Decoded> {
    match serde_json::from_str::<Head<'_>>(text) {
        Ok(Head { resource_type: Some(rt), entry }) => {
            if rt.is_empty() {
                Err(Decoded::Rejected(RejectReason::InvalidFhir, "resourceType is empty".into()))
            } else {
                Ok(Peeked { resource_type: rt, entry })
            }
        }
        Ok(Head { resource_type: None, .. }) => Err(Decoded::Rejected(RejectReason::InvalidFhir, "resourceType: missing".into())),
        Err(e) => match e.classify() {
            serde_json::error::Category::Data => Err(Decoded::Rejected(
                RejectReason::InvalidFhir,
                format!("not a FHIR resource (an object with a resourceType string): {e}"),
            )),
            _ => Err(Decoded::Rejected(RejectReason::InvalidJson, format!("not valid JSON: {e}"))),
        },
    }
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl", default)]
    full_url: Option<String>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(default)]
    request: Option<EntryRequest>,
}

#[derive(Deserialize)]
struct EntryRequest {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// The patients a Bundle (and the Bundles enclosing it) names, for resolving references.
#[derive(Default)]
struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    /// fullUrl -> patient key, for Patient entries.
    patient_urls: HashMap<String, PatientKey>,
    /// fullUrls of entries that are not Patients (a subject pointing there is not a patient).
    other_urls: HashMap<String, String>,
    /// (system, value) -> patient key, for identifier-only references.
    identifiers: Vec<(Option<String>, String, PatientKey)>,
}

impl Scope<'_> {
    fn url(&self, url: &str) -> Option<Result<&PatientKey, &str>> {
        if let Some(k) = self.patient_urls.get(url) {
            return Some(Ok(k));
        }
        if let Some(t) = self.other_urls.get(url) {
            return Some(Err(t.as_str()));
        }
        self.parent.and_then(|p| p.url(url))
    }
    fn identifier(&self, system: Option<&str>, value: &str) -> Option<&PatientKey> {
        let here = self.identifiers.iter().find(|(s, v, _)| v == value && (system.is_none() || s.as_deref() == system)).map(|(_, _, k)| k);
        here.or_else(|| self.parent.and_then(|p| p.identifier(system, value)))
    }
}

/// How a reference resolved.
pub(crate) enum Subject {
    Patient(PatientKey),
    NotPatient(String),
    Missing(String),
}

struct Ctx<'v, 'k> {
    vocab: &'v Vocabulary,
    record_key: Option<&'k PatientKey>,
    out: Vec<DecodedResource>,
}

impl Ctx<'_, '_> {
    fn bundle(&mut self, raw: &str, entry: Option<&RawValue>, depth: usize, prefix: Option<&str>, parent: Option<&Scope<'_>>) {
        let entries: Vec<Entry<'_>> = match entry {
            None => Vec::new(),
            Some(e) => match serde_json::from_str(e.get()) {
                Ok(v) => v,
                Err(err) => {
                    // The entry array itself is malformed: the Bundle's content cannot be counted entry by
                    // entry, so the whole Bundle is one rejected resource.
                    let msg = format!("Bundle.entry: {}", clean(&err.to_string()));
                    self.out.push(DecodedResource {
                        entry: prefix.map(str::to_string),
                        resource_type: Some("Bundle".into()),
                        decoded: Decoded::Rejected(RejectReason::InvalidFhir, msg),
                    });
                    return;
                }
            },
        };
        let _ = raw;
        let path = |i: usize| match prefix {
            Some(p) => format!("{p}/{i}"),
            None => i.to_string(),
        };
        // Pass 1: types of every entry, and the Patients, so references can be resolved in any entry order.
        let mut scope = Scope { parent, ..Scope::default() };
        let mut heads: Vec<Option<Result<Peeked<'_>, Decoded>>> = Vec::with_capacity(entries.len());
        let mut patients: Vec<Option<Decoded>> = Vec::with_capacity(entries.len());
        for e in &entries {
            let head = e.resource.map(|r| peek(r.get()));
            let mut patient = None;
            if let (Some(Ok(h)), Some(r)) = (&head, e.resource) {
                if h.resource_type == "Patient" {
                    let (d, ids) = resource::patient_with_identifiers(r.get(), e.full_url.as_deref());
                    if let Decoded::Event(ev) = &d {
                        if let Some(u) = &e.full_url {
                            scope.patient_urls.insert(u.clone(), ev.patient.clone());
                        }
                        for (s, v) in ids {
                            scope.identifiers.push((s, v, ev.patient.clone()));
                        }
                    }
                    patient = Some(d);
                } else if let Some(u) = &e.full_url {
                    scope.other_urls.insert(u.clone(), h.resource_type.to_string());
                }
            }
            heads.push(head);
            patients.push(patient);
        }
        // Pass 2: every entry in order.
        let first = self.out.len();
        let mut deletes: Vec<(usize, String)> = Vec::new();
        for (i, (e, (head, patient))) in entries.iter().zip(heads.into_iter().zip(patients)).enumerate() {
            let entry_path = path(i);
            match (e.resource, head) {
                (Some(r), Some(Ok(h))) => {
                    if h.resource_type == "Bundle" {
                        if depth >= MAX_BUNDLE_DEPTH {
                            let msg = format!("Bundle nested deeper than {MAX_BUNDLE_DEPTH}");
                            self.push(Some(entry_path), Some("Bundle".into()), Decoded::Rejected(RejectReason::TooDeep, msg));
                        } else {
                            self.bundle(r.get(), h.entry, depth + 1, Some(&entry_path), Some(&scope));
                        }
                        continue;
                    }
                    let decoded = match patient {
                        Some(d) => d,
                        None => self.resource(&h.resource_type, r.get(), e.full_url.as_deref(), &scope),
                    };
                    self.push(Some(entry_path), Some(h.resource_type.into_owned()), decoded);
                }
                (Some(_), Some(Err(d))) => self.push(Some(entry_path), None, d),
                (Some(_), None) => {}
                (None, _) => {
                    let delete = e.request.as_ref().filter(|q| q.method.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("DELETE")));
                    if let Some(q) = delete {
                        deletes.push((self.out.len(), q.url.clone().unwrap_or_default()));
                        // Placeholder, resolved below once the Bundle's patients are known.
                        self.push(Some(entry_path), None, Decoded::Rejected(RejectReason::NoPatient, String::new()));
                    }
                    // Any other entry without a resource (a GET, a bare response) is not a resource.
                }
            }
        }
        if deletes.is_empty() {
            return;
        }
        let bundle_patients: BTreeSet<PatientKey> = self.out[first..]
            .iter()
            .filter_map(|d| match &d.decoded {
                Decoded::Event(ev) => Some(ev.patient.clone()),
                _ => None,
            })
            .collect();
        let single = if bundle_patients.len() == 1 { bundle_patients.into_iter().next() } else { None };
        for (slot, url) in deletes {
            let (rt, decoded) = self.delete(&url, single.as_ref());
            if let Some(d) = self.out.get_mut(slot) {
                d.resource_type = rt;
                d.decoded = decoded;
            }
        }
    }

    fn delete(&self, url: &str, single: Option<&PatientKey>) -> (Option<String>, Decoded) {
        let path = url.split('?').next().unwrap_or("");
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if url.contains('?') {
            let rt = segs.first().map(|s| s.to_string());
            let msg = "conditional DELETE (by search parameters) is not read: it names no single resource".to_string();
            return (rt, Decoded::Ignored(IgnoreReason::UnsupportedResource, msg));
        }
        if segs.len() < 2 {
            let msg = format!("Bundle.entry.request.url: a DELETE must name one resource as Type/id (got {} characters)", url.len());
            let rt = segs.first().map(|s| s.to_string());
            return (rt, Decoded::Rejected(RejectReason::InvalidFhir, msg));
        }
        let (ty, id) = (segs[segs.len() - 2], segs[segs.len() - 1]);
        let Some(kind) = ResourceKind::parse(ty) else {
            return (Some(ty.to_string()), Decoded::Ignored(IgnoreReason::UnsupportedResource, format!("DELETE of {ty} (not read)")));
        };
        let patient = if kind == ResourceKind::Patient { Some(PatientKey::from_id(id)) } else { self.record_key.or(single).cloned() };
        let Some(patient) = patient else {
            let msg = "DELETE entry: no patient (input not keyed by patient, and the Bundle does not name exactly one)".to_string();
            return (Some(ty.to_string()), Decoded::Rejected(RejectReason::NoPatient, msg));
        };
        let ev = ClinicalEvent {
            patient,
            resource: ResourceId { kind, id: id.to_string() },
            version: ResourceVersion::Arrival,
            time: None,
            fact: Fact::Retraction,
        };
        (Some(ty.to_string()), Decoded::Event(ev))
    }

    fn push(&mut self, entry: Option<String>, resource_type: Option<String>, decoded: Decoded) {
        self.out.push(DecodedResource { entry, resource_type, decoded });
    }

    fn resource(&self, resource_type: &str, raw: &str, full_url: Option<&str>, scope: &Scope<'_>) -> Decoded {
        let resolve = |r: Option<&oncowatch_fhir::Reference>| resolve_subject(r, scope);
        let ident = Identity { full_url, raw };
        match resource_type {
            "Observation" => resource::observation(self.vocab, raw, &ident, resolve),
            "Condition" => resource::condition(self.vocab, raw, &ident, resolve),
            "ImagingStudy" => resource::imaging_study(self.vocab, raw, &ident, resolve),
            "Patient" => resource::patient_with_identifiers(raw, full_url).0,
            other => Decoded::Ignored(IgnoreReason::UnsupportedResource, format!("{other} is not read")),
        }
    }
}

/// What gives a resource its id when it has none: the entry's fullUrl, else a hash of its content.
pub(crate) struct Identity<'a> {
    full_url: Option<&'a str>,
    raw: &'a str,
}

impl Identity<'_> {
    pub(crate) fn id(&self, own: Option<&str>) -> String {
        if let Some(id) = own.filter(|s| !s.is_empty()) {
            return id.to_string();
        }
        if let Some(u) = self.full_url.filter(|s| !s.is_empty()) {
            return u.to_string();
        }
        format!("sha-{:016x}", fnv1a(&[self.raw.as_bytes()]))
    }
}

fn resolve_subject(r: Option<&oncowatch_fhir::Reference>, scope: &Scope<'_>) -> Subject {
    let Some(r) = r else {
        return Subject::Missing("no subject".into());
    };
    if let Some(reference) = r.reference.as_deref() {
        return match parse_reference(reference) {
            RefTarget::Patient(id) => Subject::Patient(PatientKey::from_id(&id)),
            RefTarget::Other(t) => Subject::NotPatient(t),
            RefTarget::Urn(u) => match scope.url(&u) {
                Some(Ok(k)) => Subject::Patient(k.clone()),
                Some(Err(t)) => Subject::NotPatient(t.to_string()),
                None => {
                    let bare = u.trim_start_matches("urn:uuid:").trim_start_matches("urn:oid:");
                    Subject::Patient(PatientKey::from_id(bare))
                }
            },
            RefTarget::Unusable => Subject::Missing("subject reference is contained or not of the form Type/id".into()),
        };
    }
    if let Some(i) = &r.identifier {
        if let Some(v) = i.value.as_deref().filter(|v| !v.is_empty()) {
            return match scope.identifier(i.system.as_deref(), v) {
                Some(k) => Subject::Patient(k.clone()),
                None => Subject::Patient(PatientKey::from_identifier(i.system.as_deref().unwrap_or(""), v)),
            };
        }
    }
    Subject::Missing("subject has neither a reference nor an identifier".into())
}

fn clean(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
