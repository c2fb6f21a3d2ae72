//! `oncowatch demo`: the whole service on one machine with nothing installed. Starts the embedded broker,
//! runs the real service against it (the same code path as `run`, at-least-once), feeds a generated cohort
//! at a steady rate, prints each alert as one readable line, serves /metrics meanwhile, and ends with a
//! summary scored against the generator's truth.

use super::generate::{cohort_truth, CohortOptions};
use super::http::Health;
use super::kafka::broker::EmbeddedBroker;
use super::kafka::client::KafkaConfig;
use super::kafka::feed::{feed, FeedOptions, FeedSource};
use super::kafka::run::RunConfig;
use super::kafka::service::{serve, HttpOptions};
use crate::core::engine::Engine;
use crate::core::identity::EventTime;
use crate::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub patients: u64,
    pub seed: u64,
    /// Records (resources) per second fed.
    pub rate: f64,
    /// Longest the demo runs, feeding included.
    pub duration: Duration,
    pub partitions: i32,
    pub http_listen: String,
}

/// One alert as the demo saw it.
#[derive(Debug, Clone)]
pub struct SeenAlert {
    pub pseudonym: String,
    pub tier: String,
    pub probability: f64,
    pub time: Option<EventTime>,
    pub withdrawn: bool,
}

/// What the demo measured.
#[derive(Debug, Default)]
pub struct DemoSummary {
    pub resources_fed: u64,
    pub alerts: BTreeMap<String, u64>,
    pub true_alerts: u64,
    pub false_alerts: u64,
    pub median_lead_days: Option<f64>,
    pub patients_with_metastasis: u64,
}

fn parse_alert(key: &[u8], value: &[u8]) -> Option<(SeenAlert, String)> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let tier = v.pointer("/extension/0/valueCode")?.as_str()?.to_string();
    let p = v.pointer("/prediction/0/probabilityDecimal")?.as_f64()?;
    let time = v.get("occurrenceDateTime").and_then(|t| t.as_str()).and_then(EventTime::parse_utc);
    let notes: Vec<&str> =
        v.get("note").and_then(|n| n.as_array()).map(|a| a.iter().filter_map(|n| n.get("text")?.as_str()).collect()).unwrap_or_default();
    let withdrawn = v.get("status").and_then(|s| s.as_str()) == Some("entered-in-error");
    let pseudonym = String::from_utf8_lossy(key).into_owned();
    let line =
        format!("{} {:<7} risk {:>4.0}%  {}{}", pseudonym, tier, p * 100.0, if withdrawn { "WITHDRAWN " } else { "" }, notes.join("; "));
    Some((SeenAlert { pseudonym, tier, probability: p, time, withdrawn }, line))
}

/// Runs the demo; prints alert lines to stdout and returns the summary.
pub fn demo(engine: Engine, opts: &DemoOptions) -> Result<DemoSummary, String> {
    let horizon = engine.model.as_ref().map(|m| i64::from(m.horizon_days())).unwrap_or(180);
    let topics = ["fhir.events", "oncowatch.alerts", "oncowatch.scores", "oncowatch.dlq", "oncowatch.state", "oncowatch.repartition"];
    let broker = EmbeddedBroker::start(opts.partitions, &topics).map_err(|e| e.to_string())?;
    let kafka: KafkaConfig = broker.kafka_config();
    tracing::info!(bootstrap = %broker.bootstrap(), "embedded broker started");
    let cfg = RunConfig { flush_records: 500, flush_interval_ms: 500, ..RunConfig::development(kafka.clone(), "oncowatch-demo") };
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let vocab = engine.vocab.clone();
    let decode = engine.decode.clone();
    let engine = Arc::new(engine);
    let service = {
        let (e, c, m, h, s) = (engine.clone(), cfg.clone(), metrics.clone(), health.clone(), stop.clone());
        let http = HttpOptions { listen: opts.http_listen.clone(), token: None };
        std::thread::spawn(move || serve(e, c, &http, m, h, s))
    };

    // Alerts reader: one line per alert on stdout.
    let seen: Arc<Mutex<Vec<SeenAlert>>> = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (seen, stop, kafka, partitions) = (seen.clone(), stop.clone(), kafka.clone(), opts.partitions);
        std::thread::spawn(move || -> Result<(), String> {
            let mut cc = super::kafka::client::client_config(&kafka);
            cc.set("group.id", "oncowatch-demo-reader").set("enable.auto.commit", "false");
            let c: BaseConsumer = cc.create().map_err(|e| e.to_string())?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset("oncowatch.alerts", p, Offset::Beginning).map_err(|e| e.to_string())?;
            }
            c.assign(&tpl).map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            while !stop.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    if let Some((a, line)) = parse_alert(m.key().unwrap_or(&[]), m.payload().unwrap_or(&[])) {
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                        if let Ok(mut s) = seen.lock() {
                            s.push(a);
                        }
                    }
                }
            }
            let _ = c.unassign();
            Ok(())
        })
    };

    let started = Instant::now();
    let cohort = CohortOptions { patients: opts.patients, seed: opts.seed, faults: Default::default() };
    let mut fo = FeedOptions::new(kafka, "fhir.events", FeedSource::Generate(cohort));
    fo.rate = Some(opts.rate);
    fo.progress = false;
    let fed = feed(&fo, &vocab, &decode).map_err(|e| e.to_string())?;
    // Let the service catch up: stop when every fed record is counted, or at the duration.
    let deadline = started + opts.duration;
    loop {
        let read: u64 = metrics.records.with_label_values(&["fhir.events"]).get();
        if read >= fed.messages || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let served = service.join().map_err(|_| "service thread panicked".to_string())?;
    served.map_err(|e| e.to_string())?;
    let _ = reader.join();

    let truth: BTreeMap<String, Option<EventTime>> =
        cohort_truth(&cohort).into_iter().map(|(k, t)| (engine.pseudonyms.pseudonym(&k).to_string(), t.metastasis)).collect();
    let mut s = DemoSummary {
        resources_fed: fed.records,
        patients_with_metastasis: truth.values().filter(|m| m.is_some()).count() as u64,
        ..Default::default()
    };
    let mut first_true: BTreeMap<String, f64> = BTreeMap::new();
    for a in seen.lock().map(|v| v.clone()).unwrap_or_default() {
        if a.withdrawn {
            continue;
        }
        *s.alerts.entry(a.tier.clone()).or_default() += 1;
        let met = truth.get(&a.pseudonym).copied().flatten();
        match (met, a.time) {
            (Some(m), Some(t)) if m > t && m <= t.plus_days(horizon) => {
                s.true_alerts += 1;
                let lead = m.days_since(t);
                let e = first_true.entry(a.pseudonym.clone()).or_insert(lead);
                *e = e.max(lead);
            }
            _ => s.false_alerts += 1,
        }
    }
    let mut leads: Vec<f64> = first_true.into_values().collect();
    leads.sort_by(f64::total_cmp);
    s.median_lead_days = (!leads.is_empty()).then(|| leads[leads.len() / 2]);
    let lso = broker.log_start_offsets("fhir.events").unwrap_or_default();
    if lso.iter().any(|o| *o > 0) {
        tracing::warn!("the embedded broker dropped old input records (log start above 0): lower --patients");
    }
    Ok(s)
}
