//! `oncowatch feed`: FHIR records into a Kafka topic, from files, from the generator, or re-driven from a
//! dead-letter topic.
//!
//! Sources ([`FeedSource`]):
//! - files, directories or stdin, read as `replay` reads them ([`crate::drivers::input`]): one message per
//!   record;
//! - a generated cohort ([`crate::drivers::generate`]): one message per resource. Patients are generated in
//!   batches of [`GENERATE_BATCH`] and each batch is sent in delivery-time order, so every patient's
//!   resources keep their delivery order (which is what a partition keyed by patient preserves) while
//!   memory stays bounded;
//! - a DLQ topic: every record from the log start to the high watermark, as it is (key and value), for
//!   re-driving rejected records after a fix. Headers are not copied. The read goes on past the high
//!   watermark until the topic has been idle for a second, because tansu 0.6 under-reports high
//!   watermarks (the last batch's base offset + 1); records that arrive meanwhile are re-driven too.
//!
//! Keys: with `keyed_by_patient` (the default, DESIGN.md "Kafka contract") a message's key is the canonical
//! patient key (`Patient/<id>`), resolved by the project's own decoder ([`split_record`]):
//! - a record about one patient is sent as it is (byte for byte), keyed by that patient;
//! - a Bundle about several patients is split into one Bundle per patient: the entries of that patient
//!   (its Patient entry included, each entry's bytes and `fullUrl` unchanged, so `urn:uuid` and identifier
//!   references still resolve), plus, when some entries name no single patient (ignored or rejected ones,
//!   DELETEs the Bundle cannot attribute, nested Bundles spanning patients), one unkeyed Bundle of those,
//!   so that `run` still accounts for them. The split Bundles keep the original's top-level fields
//!   except `entry`, `total` and `signature`;
//! - a resource that the decoder does not turn into an event (e.g. an ignored Observation) is keyed by its
//!   `subject`/`patient` reference when that is a plain `Patient/<id>`, else sent without a key.
//!
//! Size: a record larger than `max_message_bytes` (librdkafka's `message.max.bytes`, default 1,000,000,
//! less a margin for the key and framing) is split per patient in the same way, also when unkeyed; a
//! per-patient Bundle still too large is cut into chunks of entries, each repeating the patient's Patient
//! entries (the service counts the repeats as duplicates). What cannot fit even alone (a single resource
//! over the limit) is not sent: it is counted in [`FeedSummary::oversize`] and makes [`feed`] fail after
//! sending everything else.
//!
//! Producing is pipelined (no wait per message; delivery reports are polled as it goes and at the end);
//! `rate` paces input records with a token bucket. Keyed messages use the `murmur2_random` partitioner, so
//! partitions agree with Java producers (`kafka.extra` may override any default set here).

use super::broker::{assign_only_consumer, partition_count, valid_topic_name};
use super::client::{client_config, describe, set_default, KafkaConfig};
use crate::core::decode::{decode_record, DecodeOptions, Decoded, DecodedResource};
use crate::core::identity::{parse_reference, PatientKey, RefTarget};
use crate::core::vocabulary::Vocabulary;
use crate::drivers::generate::{self, CohortOptions};
use crate::drivers::input::{self, InputError};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Bytes kept free under `message.max.bytes` for the key and the record framing.
const FRAMING_MARGIN: usize = 1024;

/// How long a DLQ re-drive reads on, idle, after reaching the high watermarks (see [`redrive`]).
const REDRIVE_TAIL_IDLE: Duration = Duration::from_millis(1000);

/// Patients generated (and sent in delivery order) at a time by [`FeedSource::Generate`].
pub const GENERATE_BATCH: u64 = 1000;

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum FeedSource {
    /// Files, directories or `-` (stdin), as for `replay`.
    Inputs(Vec<PathBuf>),
    /// A generated cohort (one message per resource).
    Generate(CohortOptions),
    /// A dead-letter topic, re-driven from its log start to its high watermark (key and value unchanged).
    Dlq(String),
}

/// What to feed where.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    pub kafka: KafkaConfig,
    /// Destination topic.
    pub topic: String,
    pub source: FeedSource,
    /// Input records per second (`None`: as fast as the producer takes them).
    pub rate: Option<f64>,
    /// Key messages by canonical patient key, splitting multi-patient Bundles (not for a DLQ source).
    pub keyed_by_patient: bool,
    /// librdkafka `message.max.bytes` of the producer; larger records are split (see the module docs).
    pub max_message_bytes: usize,
    /// Progress on stderr.
    pub progress: bool,
    /// Bound on waiting: for delivery reports at the end (also librdkafka's `message.timeout.ms`), for
    /// metadata, and for a DLQ read that stops making progress.
    pub timeout: Duration,
}

impl FeedOptions {
    /// Options with the defaults: keyed by patient, no rate limit, 1,000,000-byte messages, 60 s timeout.
    pub fn new(kafka: KafkaConfig, topic: impl Into<String>, source: FeedSource) -> Self {
        FeedOptions {
            kafka,
            topic: topic.into(),
            source,
            rate: None,
            keyed_by_patient: true,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            progress: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What `feed` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedSummary {
    /// Input records read (file records, generated resources, DLQ records).
    pub records: u64,
    /// Messages produced (after splitting).
    pub messages: u64,
    /// Messages whose delivery the broker acknowledged.
    pub delivered: u64,
    /// Messages that failed (enqueue or delivery).
    pub failed: u64,
    pub keyed: u64,
    pub unkeyed: u64,
    /// Input records split into several messages (several patients, or over the size limit).
    pub split: u64,
    /// Parts not sent because they exceed `max_message_bytes` even alone.
    pub oversize: u64,
    /// Value bytes produced.
    pub bytes: u64,
    pub seconds: f64,
}

/// Why `feed` failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Invalid(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(
        "{} of {} messages not delivered{}{}",
        .summary.messages.saturating_sub(.summary.delivered),
        .summary.messages,
        oversize_note(.summary.oversize),
        .first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
    )]
    Delivery { summary: Box<FeedSummary>, first_error: Option<String> },
}

fn oversize_note(n: u64) -> String {
    if n > 0 {
        format!(", {n} parts over max_message_bytes not sent")
    } else {
        String::new()
    }
}

/// One message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub key: Option<PatientKey>,
    pub value: Vec<u8>,
}

/// One input record as messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitRecord {
    pub messages: Vec<OutMessage>,
    /// Parts dropped because they exceed the size limit even alone.
    pub oversize: u64,
}

/// The messages one record becomes (see the module docs): keyed by patient when `keyed`, split per patient
/// when keyed and about several patients, or when larger than `max_message_bytes`. Pure: no IO.
pub fn split_record(bytes: &[u8], vocab: &Vocabulary, decode: &DecodeOptions, keyed: bool, max_message_bytes: usize) -> SplitRecord {
    let budget = max_message_bytes.saturating_sub(FRAMING_MARGIN).max(1);
    let decoded = decode_record(bytes, vocab, decode, None);
    let whole = |key: Option<PatientKey>| {
        if bytes.len() > budget {
            SplitRecord { messages: Vec::new(), oversize: 1 }
        } else {
            SplitRecord { messages: vec![OutMessage { key, value: bytes.to_vec() }], oversize: 0 }
        }
    };
    let is_bundle = decoded.iter().any(|d| d.entry.is_some());
    if !is_bundle {
        // A single resource, an empty Bundle, or a record rejected whole.
        let key = if keyed { single_patient(&decoded).or_else(|| reference_patient(bytes)) } else { None };
        return whole(key);
    }
    let entries = entry_patients(&decoded);
    let all: BTreeSet<&PatientKey> = entries.values().flat_map(|e| e.patients.iter()).collect();
    if (!keyed || all.len() <= 1) && bytes.len() <= budget {
        let key = if keyed { all.into_iter().next().cloned() } else { None };
        return whole(key);
    }
    let Ok(bundle) = serde_json::from_slice::<RawBundle>(bytes) else {
        // The decoder read it as a Bundle, so this does not happen; send it whole rather than lose it.
        return whole(None);
    };
    // Groups in the order of their first entry; entries of no single patient go to the unkeyed rest.
    let mut order: Vec<Option<PatientKey>> = Vec::new();
    let mut groups: HashMap<Option<PatientKey>, Vec<usize>> = HashMap::new();
    for (i, raw) in bundle.entries.iter().enumerate() {
        let info = entries.get(&i);
        let patient = match info {
            Some(e) if e.patients.len() == 1 => e.patients.iter().next().cloned(),
            Some(e) if e.patients.is_empty() => entry_reference_patient(raw),
            None => entry_reference_patient(raw),
            Some(_) => None,
        };
        let g = groups.entry(patient.clone()).or_insert_with(|| {
            order.push(patient.clone());
            Vec::new()
        });
        g.push(i);
    }
    let mut out = SplitRecord::default();
    for key in order {
        let Some(idx) = groups.remove(&key) else {
            continue;
        };
        let anchors: Vec<usize> = idx.iter().copied().filter(|i| entries.get(i).is_some_and(|e| e.is_patient)).collect();
        for chunk in chunk_entries(&bundle, &idx, &anchors, budget, &mut out.oversize) {
            out.messages.push(OutMessage { key: if keyed { key.clone() } else { None }, value: chunk });
        }
    }
    out
}

/// What the decoder said about one top-level Bundle entry.
#[derive(Default)]
struct EntryInfo {
    patients: BTreeSet<PatientKey>,
    /// The entry is a Patient resource (repeated in every chunk of its patient's Bundle).
    is_patient: bool,
}

fn entry_patients(decoded: &[DecodedResource]) -> BTreeMap<usize, EntryInfo> {
    let mut out: BTreeMap<usize, EntryInfo> = BTreeMap::new();
    for d in decoded {
        let Some(path) = &d.entry else { continue };
        let mut segs = path.split('/');
        let Some(Ok(i)) = segs.next().map(str::parse::<usize>) else {
            continue;
        };
        let nested = segs.next().is_some();
        let info = out.entry(i).or_default();
        if let Decoded::Event(ev) = &d.decoded {
            info.patients.insert(ev.patient.clone());
            if !nested && d.resource_type.as_deref() == Some("Patient") {
                info.is_patient = true;
            }
        }
    }
    out
}

fn single_patient(decoded: &[DecodedResource]) -> Option<PatientKey> {
    let mut p: Option<&PatientKey> = None;
    for d in decoded {
        if let Decoded::Event(ev) = &d.decoded {
            match p {
                Some(q) if *q != ev.patient => return None,
                _ => p = Some(&ev.patient),
            }
        }
    }
    p.cloned()
}

#[derive(Deserialize)]
struct Ref {
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
struct Subjects {
    #[serde(default)]
    subject: Option<Ref>,
    #[serde(default)]
    patient: Option<Ref>,
}

/// The patient of a resource the decoder did not read as an event, from a plain `Patient/<id>` reference
/// in `subject` or `patient` (urn references need the Bundle: those stay unresolved).
fn reference_patient(resource: &[u8]) -> Option<PatientKey> {
    let s: Subjects = serde_json::from_slice(resource).ok()?;
    let r = s.subject.or(s.patient)?.reference?;
    match parse_reference(&r) {
        RefTarget::Patient(id) => Some(PatientKey::from_id(&id)),
        _ => None,
    }
}

#[derive(Deserialize)]
struct EntryResource<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

fn entry_reference_patient(entry: &RawValue) -> Option<PatientKey> {
    let e: EntryResource<'_> = serde_json::from_str(entry.get()).ok()?;
    reference_patient(e.resource?.get().as_bytes())
}

/// A Bundle as its top-level fields (raw, in order) and its raw entries.
struct RawBundle {
    fields: Vec<(String, Box<RawValue>)>,
    entries: Vec<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for RawBundle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBundle;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Bundle object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawBundle, A::Error> {
                let mut b = RawBundle { fields: Vec::new(), entries: Vec::new() };
                while let Some(k) = m.next_key::<String>()? {
                    if k == "entry" {
                        b.entries = m.next_value::<Option<Vec<Box<RawValue>>>>()?.unwrap_or_default();
                    } else {
                        let v = m.next_value::<Box<RawValue>>()?;
                        if k != "total" && k != "signature" {
                            b.fields.push((k, v));
                        }
                    }
                }
                Ok(b)
            }
        }
        d.deserialize_map(V)
    }
}

impl RawBundle {
    /// The Bundle with only the entries `idx` (in that order).
    fn with_entries(&self, idx: &[usize]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + idx.iter().filter_map(|i| self.entries.get(*i)).map(|e| e.get().len() + 1).sum::<usize>());
        out.push(b'{');
        for (k, v) in &self.fields {
            // A key read from JSON serialises back to valid JSON.
            out.extend_from_slice(&serde_json::to_vec(k).unwrap_or_default());
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"entry\":[");
        for (n, e) in idx.iter().filter_map(|i| self.entries.get(*i)).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e.get().as_bytes());
        }
        out.extend_from_slice(b"]}");
        out
    }

    fn size_of(&self, idx: &[usize]) -> usize {
        let fields: usize = self.fields.iter().map(|(k, v)| k.len() + 4 + v.get().len()).sum();
        let entries: usize = idx.iter().filter_map(|i| self.entries.get(*i)).map(|e| e.get().len() + 1).sum();
        fields + entries + 16
    }
}

/// The Bundles of one group: all of `idx` when it fits `budget`, else chunks that each repeat `anchors`.
fn chunk_entries(bundle: &RawBundle, idx: &[usize], anchors: &[usize], budget: usize, oversize: &mut u64) -> Vec<Vec<u8>> {
    if bundle.size_of(idx) <= budget {
        return vec![bundle.with_entries(idx)];
    }
    let mut out = Vec::new();
    let mut cur: Vec<usize> = anchors.to_vec();
    let mut has_own = false;
    for &i in idx.iter().filter(|i| !anchors.contains(i)) {
        cur.push(i);
        if bundle.size_of(&cur) <= budget {
            has_own = true;
            continue;
        }
        cur.pop();
        if has_own {
            out.push(bundle.with_entries(&cur));
        }
        cur = anchors.to_vec();
        cur.push(i);
        if bundle.size_of(&cur) <= budget {
            has_own = true;
        } else {
            cur.pop();
            has_own = false;
            *oversize += 1;
        }
    }
    if has_own || (out.is_empty() && !cur.is_empty() && bundle.size_of(&cur) <= budget) {
        out.push(bundle.with_entries(&cur));
    } else if out.is_empty() && !cur.is_empty() {
        // Only the anchors, and they alone are too large.
        *oversize += 1;
    }
    out
}

/// Delivery accounting of the producer.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.first_error.lock() {
            g.get_or_insert(e);
        }
    }
    fn done(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => self.fail(e.to_string()),
        }
    }
}

/// A token bucket over input records.
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let burst = (rate / 10.0).max(1.0);
        Pacer { rate, burst, tokens: burst, last: Instant::now() }
    }
    /// How long to wait before the next record may go (zero: take it now).
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// The producer side of a feed.
struct Sender<'a> {
    producer: BaseProducer<Deliveries>,
    topic: &'a str,
    pacer: Option<Pacer>,
    summary: FeedSummary,
    bar: indicatif::ProgressBar,
}

impl Sender<'_> {
    /// Waits for the rate limit (serving delivery reports meanwhile).
    fn pace(&mut self) {
        if let Some(p) = &mut self.pacer {
            loop {
                let w = p.wait();
                if w.is_zero() {
                    break;
                }
                self.producer.poll(w);
            }
        }
    }

    fn send(&mut self, key: Option<&[u8]>, value: &[u8]) {
        let mut rec = BaseRecord::<[u8], [u8]>::to(self.topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.summary.messages += 1;
        if key.is_some() {
            self.summary.keyed += 1;
        } else {
            self.summary.unkeyed += 1;
        }
        self.summary.bytes += value.len() as u64;
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    self.producer.context().fail(e.to_string());
                    break;
                }
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    fn record_done(&mut self) {
        self.summary.records += 1;
        self.bar.inc(1);
    }

    /// Polls delivery reports until every message is accounted for or `timeout` passes.
    fn finish(mut self, timeout: Duration, started: Instant) -> Result<FeedSummary, FeedError> {
        let deadline = Instant::now() + timeout;
        // flush sends lingering messages now and serves delivery reports until the queue is empty.
        if let Err(e) = self.producer.flush(timeout) {
            tracing::debug!("flush: {e}");
        }
        let ctx = self.producer.context();
        while ctx.done() < self.summary.messages && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(100));
        }
        self.bar.finish_and_clear();
        self.summary.delivered = ctx.delivered.load(Ordering::Relaxed);
        self.summary.failed = ctx.failed.load(Ordering::Relaxed);
        self.summary.seconds = started.elapsed().as_secs_f64();
        let first_error = ctx.first_error.lock().ok().and_then(|g| g.clone());
        if self.summary.delivered == self.summary.messages && self.summary.oversize == 0 {
            Ok(self.summary)
        } else {
            let first_error = first_error
                .or_else(|| (ctx.done() < self.summary.messages).then(|| format!("no delivery report within {} s", timeout.as_secs())));
            Err(FeedError::Delivery { summary: Box::new(self.summary), first_error })
        }
    }
}

fn progress_bar(enabled: bool, len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let template = match len {
        Some(_) => format!("{what} {{pos}}/{{len}} records {{wide_bar}} {{per_sec}} {{eta}}"),
        None => format!("{{spinner}} {what} {{pos}} records {{per_sec}}"),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Produces the records of `opts.source` to `opts.topic`. `vocab` and `decode` resolve patients (as `run`
/// will). Fails when the source cannot be read, the topic does not exist, or a message was not delivered
/// (the error holds the summary).
pub fn feed(opts: &FeedOptions, vocab: &Vocabulary, decode: &DecodeOptions) -> Result<FeedSummary, FeedError> {
    let started = Instant::now();
    validate(opts)?;
    tracing::info!(kafka = %describe(&opts.kafka), topic = %opts.topic, "feed");
    let mut cfg = client_config(&opts.kafka);
    let k = &opts.kafka;
    set_default(&mut cfg, k, "partitioner", "murmur2_random");
    set_default(&mut cfg, k, "message.max.bytes", &opts.max_message_bytes.to_string());
    set_default(&mut cfg, k, "linger.ms", "5");
    set_default(&mut cfg, k, "acks", "all");
    // Per-partition order matters (a patient's events in order): retries must not reorder.
    set_default(&mut cfg, k, "enable.idempotence", "true");
    let timeout_ms = opts.timeout.as_millis().clamp(1000, i32::MAX as u128);
    set_default(&mut cfg, k, "message.timeout.ms", &timeout_ms.to_string());
    let producer: BaseProducer<Deliveries> =
        cfg.create_with_context(Deliveries::default()).map_err(|e| FeedError::Kafka(format!("producer: {e}")))?;
    // The topic must exist: producing to a missing one would fail only after message.timeout.ms.
    let metadata_consumer = assign_only_consumer(&opts.kafka).map_err(FeedError::Kafka)?;
    partition_count(&metadata_consumer, &opts.topic, opts.timeout).map_err(|e| FeedError::Kafka(format!("topic {}: {e}", opts.topic)))?;
    drop(metadata_consumer);

    let mut sender = Sender {
        producer,
        topic: &opts.topic,
        pacer: opts.rate.map(Pacer::new),
        summary: FeedSummary::default(),
        bar: indicatif::ProgressBar::hidden(),
    };
    match &opts.source {
        FeedSource::Inputs(paths) => {
            let inputs = input::expand(paths)?;
            sender.bar = progress_bar(opts.progress, None, "feed");
            let split_and_send = |bytes: &[u8], s: &mut Sender<'_>| {
                s.pace();
                let parts = split_record(bytes, vocab, decode, opts.keyed_by_patient, opts.max_message_bytes);
                s.summary.oversize += parts.oversize;
                if parts.messages.len() + parts.oversize as usize > 1 {
                    s.summary.split += 1;
                }
                for m in &parts.messages {
                    s.send(m.key.as_ref().map(|k| k.as_str().as_bytes()), &m.value);
                }
                s.record_done();
            };
            input::for_each_record(&inputs, |rec| split_and_send(&rec.bytes, &mut sender), |_| {})?;
        }
        FeedSource::Generate(cohort) => {
            sender.bar = progress_bar(opts.progress, None, "feed (generated)");
            let mut lo = 1u64;
            while lo <= cohort.patients {
                let hi = lo.saturating_add(GENERATE_BATCH).min(cohort.patients + 1);
                let batch: Vec<generate::GeneratedPatient> = (lo..hi).map(|n| generate::generate_patient(cohort, n)).collect();
                for (p, r) in generate::delivery_order(&batch) {
                    let Some(d) = batch.get(p).and_then(|gp| gp.resources.get(r)) else {
                        continue;
                    };
                    let bytes = serde_json::to_vec(&d.resource).map_err(|e| FeedError::Invalid(format!("generated resource: {e}")))?;
                    sender.pace();
                    let parts = split_record(&bytes, vocab, decode, opts.keyed_by_patient, opts.max_message_bytes);
                    sender.summary.oversize += parts.oversize;
                    for m in &parts.messages {
                        sender.send(m.key.as_ref().map(|k| k.as_str().as_bytes()), &m.value);
                    }
                    sender.record_done();
                }
                lo = hi;
            }
        }
        FeedSource::Dlq(dlq) => redrive(opts, dlq, &mut sender)?,
    }
    sender.finish(opts.timeout, started)
}

fn validate(opts: &FeedOptions) -> Result<(), FeedError> {
    opts.kafka.validate().map_err(FeedError::Invalid)?;
    if !valid_topic_name(&opts.topic) {
        return Err(FeedError::Invalid(format!("--topic {:?}: not a valid topic name", opts.topic)));
    }
    if let Some(r) = opts.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(FeedError::Invalid(format!("--rate {r}: must be a positive number of records per second")));
        }
    }
    if opts.max_message_bytes < 2 * FRAMING_MARGIN {
        return Err(FeedError::Invalid(format!("max_message_bytes {}: too small", opts.max_message_bytes)));
    }
    match &opts.source {
        FeedSource::Dlq(t) if t == &opts.topic => Err(FeedError::Invalid(format!("--from-dlq {t}: the same topic as --topic"))),
        FeedSource::Dlq(t) if !valid_topic_name(t) => Err(FeedError::Invalid(format!("--from-dlq {t:?}: not a valid topic name"))),
        FeedSource::Inputs(p) if p.is_empty() => Err(FeedError::Invalid("no input given".into())),
        _ => Ok(()),
    }
}

/// Reads `dlq` from each partition's log start to its high watermark (as they were when the read began),
/// then on until the topic is idle for [`REDRIVE_TAIL_IDLE`], and re-produces every record's key and value.
fn redrive(opts: &FeedOptions, dlq: &str, sender: &mut Sender<'_>) -> Result<(), FeedError> {
    let consumer = assign_only_consumer(&opts.kafka).map_err(FeedError::Kafka)?;
    let n = partition_count(&consumer, dlq, opts.timeout).map_err(|e| FeedError::Kafka(format!("topic {dlq}: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut total = 0u64;
    for p in 0..n {
        let (lo, hi) =
            consumer.fetch_watermarks(dlq, p, opts.timeout).map_err(|e| FeedError::Kafka(format!("topic {dlq} partition {p}: {e}")))?;
        if hi > lo {
            tpl.add_partition_offset(dlq, p, Offset::Offset(lo)).map_err(|e| FeedError::Kafka(e.to_string()))?;
            remaining.insert(p, hi);
            total += u64::try_from(hi - lo).unwrap_or(0);
        }
    }
    tracing::info!(topic = dlq, records = total, "re-driving the dead-letter topic");
    sender.bar = progress_bar(opts.progress, Some(total), "re-drive");
    if remaining.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl).map_err(|e| FeedError::Kafka(format!("assign {dlq}: {e}")))?;
    let mut last_progress = Instant::now();
    // After every partition reached its high watermark, read on until the topic is idle for
    // `REDRIVE_TAIL_IDLE`: tansu 0.6 reports the high watermark as the last batch's base offset + 1, so the
    // rest of that batch lies beyond it.
    let mut idle_since: Option<Instant> = None;
    loop {
        if remaining.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= REDRIVE_TAIL_IDLE {
                break;
            }
        } else if last_progress.elapsed() > opts.timeout {
            let _ = consumer.unassign();
            return Err(FeedError::Kafka(format!(
                "topic {dlq}: no progress for {} s with {} partitions unread to their high watermark",
                opts.timeout.as_secs(),
                remaining.len()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                idle_since = None;
                sender.pace();
                sender.send(m.key(), m.payload().unwrap_or_default());
                sender.record_done();
                if remaining.get(&m.partition()).is_some_and(|hi| m.offset() + 1 >= *hi) {
                    remaining.remove(&m.partition());
                }
            }
            Some(Err(e)) => {
                let _ = consumer.unassign();
                return Err(FeedError::Kafka(format!("consume {dlq}: {e}")));
            }
            None => {
                // Control records (transaction markers) are never delivered: a partition is done when the
                // consumer's position reaches its high watermark.
                if let Ok(pos) = consumer.position() {
                    for el in pos.elements() {
                        if let (Some(&hi), Offset::Offset(o)) = (remaining.get(&el.partition()), el.offset()) {
                            if o >= hi {
                                remaining.remove(&el.partition());
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = consumer.unassign();
    Ok(())
}
