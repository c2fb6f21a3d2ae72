//! The repartition stage (when `input.keyed_by_patient = false`): read the raw input topics, resolve each
//! record's patient, and re-produce it keyed by canonical patient key to the internal repartition topic,
//! splitting a Bundle that names several patients into one Bundle per patient. Entries that belong to no
//! patient (unsupported types, unusable entries) travel together in one unkeyed Bundle, so the stateful
//! stage still accounts for every resource exactly once.

use super::client::client_config;
use super::run::{RunConfig, RunError};
use crate::core::decode::{decode_record, Decoded};
use crate::core::engine::Engine;
use crate::core::identity::PatientKey;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Splits one record by patient: `(patient, bytes)` pairs. A record about at most one patient comes back
/// whole (unchanged bytes); a Bundle about several is split at its top-level entries.
pub fn split_by_patient(bytes: &[u8], engine: &Engine) -> Vec<(Option<PatientKey>, Vec<u8>)> {
    let decoded = decode_record(bytes, &engine.vocab, &engine.decode, None);
    let mut by_entry: BTreeMap<usize, PatientKey> = BTreeMap::new();
    let mut patients: Vec<PatientKey> = Vec::new();
    for d in &decoded {
        if let Decoded::Event(ev) = &d.decoded {
            if !patients.contains(&ev.patient) {
                patients.push(ev.patient.clone());
            }
            if let Some(i) = d.entry.as_deref().and_then(|e| e.split('/').next()).and_then(|i| i.parse().ok()) {
                by_entry.entry(i).or_insert_with(|| ev.patient.clone());
            }
        }
    }
    if patients.len() <= 1 {
        return vec![(patients.into_iter().next(), bytes.to_vec())];
    }
    let Ok(Value::Object(mut bundle)) = serde_json::from_slice::<Value>(bytes) else {
        return vec![(None, bytes.to_vec())];
    };
    let entries = match bundle.remove("entry") {
        Some(Value::Array(e)) => e,
        _ => return vec![(None, bytes.to_vec())],
    };
    let mut groups: BTreeMap<Option<PatientKey>, Vec<Value>> = BTreeMap::new();
    for (i, e) in entries.into_iter().enumerate() {
        groups.entry(by_entry.get(&i).cloned()).or_default().push(e);
    }
    groups
        .into_iter()
        .map(|(k, entries)| {
            let mut b = bundle.clone();
            b.insert("entry".into(), Value::Array(entries));
            (k, Value::Object(b).to_string().into_bytes())
        })
        .collect()
}

/// Runs the repartition stage until `stop` is set.
pub fn run(engine: Arc<Engine>, cfg: RunConfig, stop: Arc<AtomicBool>) -> Result<u64, RunError> {
    let mut pc = client_config(&cfg.kafka);
    pc.set("partitioner", "murmur2_random").set("enable.idempotence", "true").set("linger.ms", "5");
    let producer: ThreadedProducer<DefaultProducerContext> = pc.create()?;
    let mut cc = client_config(&cfg.kafka);
    cc.set("group.id", format!("{}-repartition", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky");
    let consumer: BaseConsumer = cc.create()?;
    let topics: Vec<&str> = cfg.input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let mut count = 0u64;
    let mut since_flush = 0usize;
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Some(r) = consumer.poll(Duration::from_millis(100)) {
            let m = r?;
            for (key, value) in split_by_patient(m.payload().unwrap_or(&[]), &engine) {
                let k = key.as_ref().map(|k| k.as_str().as_bytes().to_vec()).unwrap_or_default();
                let mut rec = BaseRecord::to(&cfg.repartition_topic).payload(&value);
                if !k.is_empty() {
                    rec = rec.key(&k);
                }
                let mut rec = rec;
                loop {
                    match producer.send(rec) {
                        Ok(()) => break,
                        Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                            rec = r;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err((e, _)) => return Err(e.into()),
                    }
                }
            }
            count += 1;
            since_flush += 1;
        }
        if since_flush > 0 && (since_flush >= cfg.flush_records || last.elapsed() >= Duration::from_millis(cfg.flush_interval_ms)) {
            producer.flush(Duration::from_secs(300))?;
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::warn!("repartition commit failed (retried): {e}");
            }
            since_flush = 0;
            last = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    consumer.unsubscribe();
    Ok(count)
}
