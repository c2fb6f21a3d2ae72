//! `oncowatch run`: the stream service. A consumer in a group (cooperative-sticky) over the input topics;
//! each record goes through the same [`Engine`] as `replay`; alerts, scores and DLQ records are produced; the
//! per-partition state is kept in memory and in the compacted changelog topic.
//!
//! Task p = partition p of every input topic (they are co-partitioned). Its state lives in memory while
//! assigned and in changelog partition p (key = pseudonym, value = the encoded `PatientState`), with one
//! checkpoint record per task (key [`CHECKPOINT_KEY`]) holding the input offsets the state reflects.
//!
//! Checkpoint flow (at-least-once): every `flush_records` records or `flush_interval_ms`:
//! 1. produce one changelog record per changed patient (coalesced) and the task's checkpoint;
//! 2. wait for every delivery report (outputs, DLQ, changelog) — a failed delivery stops the service, so
//!    nothing is committed past an undelivered output;
//! 3. commit the input offsets.
//!
//! On assignment a task is restored before any of its records is processed: its changelog partition is read
//! to the high watermark, and the input partitions start at the checkpoint's offsets (so re-processed
//! records re-publish the same alerts, byte for byte). On revocation the task is flushed, committed and
//! dropped. Exactly-once puts steps 1–3 in one transaction (`send_offsets_to_transaction`); an abortable
//! error aborts and restores every task from the changelog.

use super::client::{client_config, KafkaConfig};
use crate::core::engine::{Engine, RecordReport, States};
use crate::core::identity::{EventTime, PatientKey};
use crate::core::reason::Outcome;
use crate::core::state::PatientState;
use crate::drivers::http::Health;
use crate::metrics::Metrics;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reserved changelog key of a task's checkpoint record.
pub const CHECKPOINT_KEY: &str = "__oncowatch_checkpoint__";

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    AtLeastOnce,
    ExactlyOnce,
}

/// Topics and service settings (config sections `input`, `output` and `run`, gathered by main).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub kafka: KafkaConfig,
    pub input_topics: Vec<String>,
    pub keyed_by_patient: bool,
    pub alerts_topic: String,
    /// Empty: no scores topic.
    pub scores_topic: String,
    pub dlq_topic: String,
    pub state_topic: String,
    pub repartition_topic: String,
    pub group_id: String,
    pub delivery: Delivery,
    pub transactional_id: String,
    pub flush_records: usize,
    pub flush_interval_ms: u64,
    /// Whether the broker compacts the changelog (real Kafka: true; the embedded broker: false).
    pub broker_compacts: bool,
}

impl RunConfig {
    /// The design's topic names against a development broker that does not compact (the embedded one, or a
    /// test broker), at-least-once, with short flushes.
    pub fn development(kafka: KafkaConfig, group: &str) -> Self {
        RunConfig {
            kafka,
            input_topics: vec!["fhir.events".into()],
            keyed_by_patient: true,
            alerts_topic: "oncowatch.alerts".into(),
            scores_topic: String::new(),
            dlq_topic: "oncowatch.dlq".into(),
            state_topic: "oncowatch.state".into(),
            repartition_topic: "oncowatch.repartition".into(),
            group_id: group.into(),
            delivery: Delivery::AtLeastOnce,
            transactional_id: format!("{group}-0"),
            flush_records: 200,
            flush_interval_ms: 300,
            broker_compacts: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Config(String),
    #[error("delivery failed for {0} record(s): stopping so that no offset is committed past them")]
    Delivery(u64),
    #[error("changelog topic {topic} has {found} partitions but the input topics have {expected}")]
    Partitions { topic: String, found: usize, expected: usize },
}

/// One task: the state of partition p of the inputs.
#[derive(Default)]
struct Task {
    states: States,
    dirty: BTreeSet<PatientKey>,
    /// Next offset to read, per input topic.
    offsets: BTreeMap<String, i64>,
    /// Offsets as of the last checkpoint (what a restore resumes from).
    checkpointed: BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize, Default)]
struct Checkpoint {
    offsets: BTreeMap<String, i64>,
}

/// How long a changelog partition must stay quiet past its high watermark before a restore ends.
const RESTORE_IDLE: Duration = Duration::from_millis(300);

/// Applies one changelog record to a task being restored: a checkpoint, or a patient's latest state.
fn apply_changelog_record(task: &mut Task, p: i32, m: &rdkafka::message::BorrowedMessage<'_>) {
    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    if key == CHECKPOINT_KEY {
        if let Some(cp) = m.payload().and_then(|v| serde_json::from_slice::<Checkpoint>(v).ok()) {
            task.checkpointed = cp.offsets;
        }
    } else if let Some(v) = m.payload() {
        match PatientState::decode(v) {
            Ok(s) => {
                task.states.insert(s.key.clone(), s);
            }
            Err(e) => tracing::error!(partition = p, offset = m.offset(), "unreadable changelog record: {e}"),
        }
    }
}

/// Producer context: counts failed deliveries.
pub struct DeliveryCounter {
    pub failed: AtomicU64,
    pub delivered: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::SeqCst),
            Err((e, _)) => {
                tracing::error!("delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

type Prod = ThreadedProducer<DeliveryCounter>;

/// Everything the consumer callbacks and the loop share.
struct Shared {
    engine: Arc<Engine>,
    cfg: RunConfig,
    producer: Arc<Prod>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    tasks: Mutex<BTreeMap<i32, Task>>,
    /// Records processed since the last flush, and alert latencies waiting for delivery.
    pending: Mutex<(usize, Vec<i64>)>,
    fatal: Mutex<Option<String>>,
    in_transaction: AtomicBool,
    /// Set by a restore: the checkpoint's offsets may be ahead of the group's committed offsets (a crash
    /// between changelog and commit), so they are committed at the next flush even with nothing new read.
    commit_due: AtomicBool,
}

/// Consumer context: restores on assignment, flushes on revocation.
struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.shared.metrics.lag.with_label_values(&[topic, &p.to_string()]).set(part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        self.shared.metrics.rebalances.inc();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.shared.health.set_ready(false, "restoring assigned partitions");
                let partitions: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for p in partitions {
                    match self.shared.restore(p) {
                        Ok(offsets) => {
                            for (topic, off) in offsets {
                                let _ = tpl.set_partition_offset(&topic, p, Offset::Offset(off));
                            }
                        }
                        Err(e) => self.shared.set_fatal(format!("restore of partition {p}: {e}")),
                    }
                }
                let r = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = r {
                    self.shared.set_fatal(format!("assign: {e}"));
                }
                self.shared.update_ready(consumer);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                if let Err(e) = self.shared.flush(consumer, Some(&partitions)) {
                    self.shared.set_fatal(format!("flush on revocation: {e}"));
                }
                if let Ok(mut tasks) = self.shared.tasks.lock() {
                    for p in &partitions {
                        tasks.remove(p);
                    }
                }
                let r = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = r {
                    tracing::warn!("unassign: {e}");
                }
                self.shared.update_ready(consumer);
            }
            other => tracing::warn!("rebalance error: {other:?}"),
        }
        let _ = Rebalance::Error;
    }
}

impl Shared {
    fn set_fatal(&self, msg: String) {
        tracing::error!("{msg}");
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(msg);
        }
    }

    fn update_ready(&self, consumer: &BaseConsumer<Ctx>) {
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        let lost = self.metrics.lost_state.with_label_values(&["any"]).get() > 0;
        if lost {
            self.health.set_ready(false, "a changelog partition lost state (see oncowatch_lost_state)");
        } else {
            self.health.set_ready(true, "");
        }
        self.metrics.ready.set(i64::from(!lost));
        tracing::info!(partitions = assigned, "assignment changed");
    }

    /// Reads changelog partition `p` to its high watermark into a fresh task; returns the input offsets to
    /// resume from (the checkpoint), if any.
    fn restore(&self, p: i32) -> Result<BTreeMap<String, i64>, RunError> {
        if let Ok(tasks) = self.tasks.lock() {
            if let Some(t) = tasks.get(&p) {
                return Ok(t.checkpointed.clone());
            }
        }
        let started = Instant::now();
        let mut cc = client_config(&self.cfg.kafka);
        cc.set("group.id", format!("{}-restore", self.cfg.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let c: BaseConsumer = cc.create()?;
        let (low, high) = c.fetch_watermarks(&self.cfg.state_topic, p, Duration::from_secs(10))?;
        if low > 0 && !self.cfg.broker_compacts {
            self.metrics.lost_state.with_label_values(&[&p.to_string()]).set(1);
            self.metrics.lost_state.with_label_values(&["any"]).set(1);
            tracing::error!(
                partition = p,
                log_start = low,
                "changelog partition lost records: its log start is above 0 on a broker that does not compact"
            );
        }
        let mut task = Task::default();
        if high > low {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.cfg.state_topic, p, Offset::Offset(low))?;
            c.assign(&tpl)?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut pos = low;
            // Read to the high watermark, then on until the partition has been idle for a moment: some
            // Kafka-compatible brokers (tansu 0.6's memory storage) report the high watermark of a
            // multi-record batch too low.
            let mut idle_since: Option<Instant> = None;
            loop {
                if Instant::now() > deadline {
                    return Err(RunError::Config(format!("restore of changelog partition {p} timed out at offset {pos} of {high}")));
                }
                if pos >= high && idle_since.is_some_and(|t| t.elapsed() >= RESTORE_IDLE) {
                    break;
                }
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        idle_since = None;
                        pos = m.offset() + 1;
                        apply_changelog_record(&mut task, p, &m);
                    }
                    Some(Err(e)) => tracing::warn!("restore poll: {e}"),
                    None => {
                        idle_since.get_or_insert_with(Instant::now);
                    }
                }
            }
            c.unassign()?;
        }
        task.offsets = task.checkpointed.clone();
        if !task.checkpointed.is_empty() {
            self.commit_due.store(true, Ordering::SeqCst);
        }
        let offsets = task.checkpointed.clone();
        tracing::info!(partition = p, patients = task.states.len(), seconds = started.elapsed().as_secs_f64(), "partition restored");
        self.metrics.restore_seconds.observe(started.elapsed().as_secs_f64());
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.insert(p, task);
        }
        Ok(offsets)
    }

    fn send(&self, topic: &str, partition: Option<i32>, key: &[u8], value: &[u8], headers: OwnedHeaders) -> Result<(), RunError> {
        let mut rec = BaseRecord::to(topic).key(key).payload(value).headers(headers);
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        let mut rec = rec;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Processes one input record of task `p`.
    fn process(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<(), RunError> {
        let started = Instant::now();
        let p = m.partition();
        let topic = m.topic().to_string();
        let bytes = m.payload().unwrap_or(&[]);
        let key = if self.cfg.keyed_by_patient || topic == self.cfg.repartition_topic {
            m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(PatientKey::parse_canonical)
        } else {
            None
        };
        let ts = m.timestamp().to_millis();
        let arrival = ts.map(EventTime);
        let report: RecordReport = {
            let mut tasks = self.tasks.lock().map_err(|_| RunError::Config("state lock poisoned".into()))?;
            let task = tasks.entry(p).or_default();
            if task.offsets.get(&topic).is_some_and(|o| m.offset() < *o) {
                // Already reflected in the restored state.
                return Ok(());
            }
            let report = self.engine.process(&mut task.states, bytes, key.as_ref(), arrival);
            task.dirty.extend(report.changed.iter().cloned());
            task.offsets.insert(topic.clone(), m.offset() + 1);
            report
        };
        self.metrics.record(&topic, &report);
        self.metrics.processing.with_label_values(&["record"]).observe(started.elapsed().as_secs_f64());
        let model_version = self.engine.model.as_ref().map(|m| m.version.clone()).unwrap_or_default();
        for a in &report.alerts {
            let tier = crate::core::alerts::policy::tier_name(a.tier);
            let h = OwnedHeaders::new()
                .insert(Header { key: "content-type", value: Some("application/fhir+json") })
                .insert(Header { key: "oncowatch-tier", value: Some(tier) })
                .insert(Header { key: "oncowatch-model-version", value: Some(model_version.as_str()) });
            self.send(&self.cfg.alerts_topic, None, a.pseudonym.as_str().as_bytes(), a.json.as_bytes(), h)?;
            if let (Some(t), Ok(mut pend)) = (ts, self.pending.lock()) {
                pend.1.push(t);
            }
        }
        if !self.cfg.scores_topic.is_empty() {
            for s in &report.scores {
                self.send(&self.cfg.scores_topic, None, s.pseudonym.as_bytes(), s.to_json(&model_version).as_bytes(), OwnedHeaders::new())?;
            }
        }
        let rejected: Vec<(String, String, String)> = report
            .resources
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Rejected(reason, msg) => Some((reason.code().to_string(), msg.clone(), r.entry.clone().unwrap_or_default())),
                _ => None,
            })
            .collect();
        if let Some((reason, message, _)) = rejected.first() {
            let entries: Vec<&str> = rejected.iter().map(|(_, _, e)| e.as_str()).filter(|e| !e.is_empty()).collect();
            let (partition, offset) = (p.to_string(), m.offset().to_string());
            let entries = entries.join(",");
            let h = OwnedHeaders::new()
                .insert(Header { key: "oncowatch-reason", value: Some(reason.as_str()) })
                .insert(Header { key: "oncowatch-message", value: Some(message.as_str()) })
                .insert(Header { key: "oncowatch-source-topic", value: Some(topic.as_str()) })
                .insert(Header { key: "oncowatch-source-partition", value: Some(partition.as_str()) })
                .insert(Header { key: "oncowatch-source-offset", value: Some(offset.as_str()) })
                .insert(Header { key: "oncowatch-entries", value: Some(entries.as_str()) });
            self.send(&self.cfg.dlq_topic, None, m.key().unwrap_or(&[]), bytes, h)?;
            self.metrics.dlq.with_label_values(&[reason.as_str()]).inc();
        }
        if let Some(h) = m.headers() {
            let _ = h.count();
        }
        if let Ok(mut pend) = self.pending.lock() {
            pend.0 += 1;
        }
        Ok(())
    }

    /// The checkpoint flow for the given tasks (all when `None`).
    fn flush(&self, consumer: &BaseConsumer<Ctx>, only: Option<&BTreeSet<i32>>) -> Result<(), RunError> {
        let mut commit = TopicPartitionList::new();
        let mut state_bytes = 0i64;
        let mut patients = 0i64;
        {
            let mut tasks = self.tasks.lock().map_err(|_| RunError::Config("state lock poisoned".into()))?;
            for (p, task) in tasks.iter_mut() {
                patients += task.states.len() as i64;
                if only.is_some_and(|o| !o.contains(p)) {
                    continue;
                }
                let dirty = std::mem::take(&mut task.dirty);
                for key in &dirty {
                    if let Some(s) = task.states.get(key) {
                        let v = s.encode();
                        state_bytes += v.len() as i64;
                        let pseudo = self.engine.pseudonyms.pseudonym(key);
                        self.send(&self.cfg.state_topic, Some(*p), pseudo.as_str().as_bytes(), &v, OwnedHeaders::new())?;
                    }
                }
                if !dirty.is_empty() || task.offsets != task.checkpointed {
                    let cp = serde_json::to_vec(&Checkpoint { offsets: task.offsets.clone() }).unwrap_or_default();
                    self.send(&self.cfg.state_topic, Some(*p), CHECKPOINT_KEY.as_bytes(), &cp, OwnedHeaders::new())?;
                    task.checkpointed = task.offsets.clone();
                }
                for (topic, off) in &task.offsets {
                    commit.add_partition_offset(topic, *p, Offset::Offset(*off))?;
                }
            }
        }
        self.metrics.patients.set(patients);
        if state_bytes > 0 {
            self.metrics.state_bytes.set(state_bytes);
        }
        if self.cfg.delivery == Delivery::ExactlyOnce {
            if commit.count() > 0 {
                self.producer.send_offsets_to_transaction(
                    &commit,
                    &consumer.group_metadata().ok_or_else(|| RunError::Config("no group metadata".into()))?,
                    Duration::from_secs(30),
                )?;
            }
            self.producer.commit_transaction(Duration::from_secs(60))?;
            self.producer.begin_transaction()?;
        } else {
            self.producer.flush(Duration::from_secs(300))?;
            let failed = self.producer.context().failed.swap(0, Ordering::SeqCst);
            if failed > 0 {
                return Err(RunError::Delivery(failed));
            }
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    self.metrics.commit_failures.inc();
                    tracing::warn!("offset commit failed (retried at the next flush): {e}");
                }
            }
        }
        if let Ok(mut pend) = self.pending.lock() {
            let now = wall_ms();
            for t in pend.1.drain(..) {
                self.metrics.event_to_alert.observe(((now - t) as f64 / 1000.0).max(0.0));
            }
            pend.0 = 0;
        }
        Ok(())
    }
}

/// The wall clock, for the latency metric only (drivers may read it; the core never does).
fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// What a run did (for tests and the demo's summary).
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub records: u64,
}

/// Checks that the changelog has as many partitions as the inputs; creates nothing (topics are created by
/// the operator, `oncowatch broker`, or `ensure_topics`).
pub fn check_partitions(cfg: &RunConfig) -> Result<usize, RunError> {
    let c: BaseConsumer = client_config(&cfg.kafka).create()?;
    let md = c.fetch_metadata(None, Duration::from_secs(10))?;
    let count = |name: &str| md.topics().iter().find(|t| t.name() == name).map(|t| t.partitions().len()).unwrap_or(0);
    let inputs: Vec<usize> = cfg.input_topics.iter().map(|t| count(t)).collect();
    let expected = inputs.first().copied().unwrap_or(0);
    if expected == 0 {
        return Err(RunError::Config(format!("input topic {} does not exist", cfg.input_topics.first().map(String::as_str).unwrap_or(""))));
    }
    if inputs.iter().any(|n| *n != expected) {
        return Err(RunError::Config(format!("input topics are not co-partitioned: partition counts {inputs:?}")));
    }
    let found = count(&cfg.state_topic);
    if found != expected {
        return Err(RunError::Partitions { topic: cfg.state_topic.clone(), found, expected });
    }
    Ok(expected)
}

/// Runs the service until `stop` is set (or a fatal error). `max_records` bounds the run (tests).
pub fn run(
    engine: Arc<Engine>,
    cfg: RunConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary, RunError> {
    let input_topics: Vec<String> = if cfg.keyed_by_patient { cfg.input_topics.clone() } else { vec![cfg.repartition_topic.clone()] };
    let mut check = cfg.clone();
    check.input_topics = input_topics.clone();
    check_partitions(&check)?;
    if let Some(m) = &engine.model {
        metrics
            .model_info
            .with_label_values(&[&m.version, &format!("{} v{}", crate::core::features::SCHEMA_NAME, crate::core::features::SCHEMA_VERSION)])
            .set(1);
    }
    let mut pc: ClientConfig = client_config(&cfg.kafka);
    pc.set("partitioner", "murmur2_random").set("linger.ms", "5").set("message.timeout.ms", "300000");
    if cfg.delivery == Delivery::ExactlyOnce {
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        pc.set("transactional.id", &cfg.transactional_id).set("transaction.timeout.ms", "60000").set("message.timeout.ms", "60000");
    } else {
        pc.set("enable.idempotence", "true");
    }
    let producer: Prod = pc.create_with_context(DeliveryCounter { failed: AtomicU64::new(0), delivered: AtomicU64::new(0) })?;
    if cfg.delivery == Delivery::ExactlyOnce {
        producer.init_transactions(Duration::from_secs(30))?;
        producer.begin_transaction()?;
    }
    let shared = Arc::new(Shared {
        engine,
        cfg: cfg.clone(),
        producer: Arc::new(producer),
        metrics: metrics.clone(),
        health: health.clone(),
        tasks: Mutex::new(BTreeMap::new()),
        pending: Mutex::new((0, Vec::new())),
        fatal: Mutex::new(None),
        in_transaction: AtomicBool::new(cfg.delivery == Delivery::ExactlyOnce),
        commit_due: AtomicBool::new(false),
    });
    let mut cc = client_config(&cfg.kafka);
    cc.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("statistics.interval.ms", "5000")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<Ctx> = cc.create_with_context(Ctx { shared: shared.clone() })?;
    let topics: Vec<&str> = input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    health.live.store(true, Ordering::SeqCst);
    tracing::info!(topics = ?topics, group = %cfg.group_id, delivery = ?cfg.delivery, "consuming");
    let mut summary = RunSummary::default();
    let mut last_flush = Instant::now();
    let mut last_event: BTreeMap<String, Instant> = BTreeMap::new();
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Some(f) = shared.fatal.lock().ok().and_then(|f| f.clone()) {
            break Err(RunError::Config(f));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                summary.records += 1;
                last_event.insert(m.topic().to_string(), Instant::now());
                if let Err(e) = shared.process(&m) {
                    break Err(e);
                }
            }
            Some(Err(e)) => tracing::warn!("consume: {e}"),
            None => {}
        }
        for (t, at) in &last_event {
            metrics.since_last_event.with_label_values(&[t]).set(at.elapsed().as_secs_f64());
        }
        let pending = shared.pending.lock().map(|p| p.0).unwrap_or(0);
        let due = pending > 0 || shared.commit_due.load(Ordering::SeqCst);
        if pending >= cfg.flush_records || (due && last_flush.elapsed() >= Duration::from_millis(cfg.flush_interval_ms)) {
            shared.commit_due.store(false, Ordering::SeqCst);
            match shared.flush(&consumer, None) {
                Ok(()) => last_flush = Instant::now(),
                Err(RunError::Kafka(e)) if shared.in_transaction.load(Ordering::SeqCst) && is_abortable(&e) => {
                    tracing::warn!("transaction aborted ({e}); rewinding to the last committed state");
                    let _ = shared.producer.abort_transaction(Duration::from_secs(30));
                    let _ = shared.producer.begin_transaction();
                    if let Err(e) = rewind(&shared, &consumer) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        }
    };
    // Shutdown: flush and commit what was processed, then leave the group.
    let flushed = if result.is_ok() { shared.flush(&consumer, None) } else { Ok(()) };
    consumer.unsubscribe();
    health.set_ready(false, "stopped");
    result?;
    flushed?;
    Ok(summary)
}

fn is_abortable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.txn_requires_abort(),
        _ => false,
    }
}

/// After an aborted transaction: forget every task and restore it from the changelog (the last committed
/// state), seeking the inputs back to its checkpoint.
fn rewind(shared: &Shared, consumer: &BaseConsumer<Ctx>) -> Result<(), RunError> {
    let parts: Vec<i32> = shared.tasks.lock().map(|t| t.keys().copied().collect()).unwrap_or_default();
    if let Ok(mut t) = shared.tasks.lock() {
        t.clear();
    }
    for p in parts {
        for (topic, off) in shared.restore(p)? {
            consumer.seek(&topic, p, Offset::Offset(off), Duration::from_secs(10))?;
        }
    }
    Ok(())
}
