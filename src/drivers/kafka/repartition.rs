//! The repartition stage (when `input.keyed_by_patient = false`): read the raw input topics, resolve each
//! record's patient, and re-produce it keyed by canonical patient key to the internal repartition topic,
//! splitting a Bundle that names several patients into one Bundle per patient. Entries that belong to no
//! patient (unsupported types, unusable entries) travel together in one unkeyed Bundle, so the stateful
//! stage still accounts for every resource exactly once.

use super::client::client_config;
use super::feed::{split_record, OutMessage};
use super::run::{RunConfig, RunError};
use crate::core::engine::Engine;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            // The same per-patient split as `feed` (no size limit here: the record already fit in one message).
            let split = split_record(m.payload().unwrap_or(&[]), &engine.vocab, &engine.decode, true, usize::MAX);
            for OutMessage { key, value } in split.messages {
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
