//! The Kafka service against the embedded broker (librdkafka's mock cluster) and against tansu (a real
//! broker process on 127.0.0.1): agreement with replay, restart mid-stream, rebalance, DLQ and outage,
//! repartitioning, and the exactly-once code path. Streams stay under the mock's ~5 MiB per partition;
//! every test asserts the input partitions' log-start offsets are still 0.

mod common;

use oncowatch::core::alerts::policy::PolicyConfig;
use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::Engine;
use oncowatch::core::identity::Pseudonymizer;
use oncowatch::core::model::Model;
use oncowatch::core::vocabulary::Vocabulary;
use oncowatch::drivers::generate::{generate, CohortOptions, Format, GenerateOptions};
use oncowatch::drivers::http::Health;
use oncowatch::drivers::kafka::broker::EmbeddedBroker;
use oncowatch::drivers::kafka::client::{client_config, KafkaConfig};
use oncowatch::drivers::kafka::feed::{feed, FeedOptions, FeedSource};
use oncowatch::drivers::kafka::run::{Delivery, RunConfig, CHECKPOINT_KEY};
use oncowatch::drivers::kafka::service::{serve, HttpOptions};
use oncowatch::drivers::replay::{replay, ReplayOptions};
use oncowatch::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "integration-test-pseudonym-key";
const TOPICS: [&str; 5] = ["fhir.events", "oncowatch.alerts", "oncowatch.dlq", "oncowatch.state", "oncowatch.repartition"];
const PARTITIONS: i32 = 3;
/// The cohort of these tests: small enough for the mock broker, large enough for alerts in every tier.
const PATIENTS: u64 = 70;
const SEED: u64 = 11;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oncowatch-kafka-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

fn engine() -> Engine {
    let model = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.json")).expect("default model");
    // The cohort's history is years old: backfill suppression would silence every alert in Kafka (arrival =
    // now) and none in replay, so it is off here; its own test is in the engine's unit tests.
    let policy = PolicyConfig { max_event_lag_days: 1_000_000, ..PolicyConfig::default() };
    Engine::new(Vocabulary::builtin().expect("vocab"), DecodeOptions::default(), Pseudonymizer::new(KEY.as_bytes()))
        .with_model(model, policy)
}

/// The generated cohort as one NDJSON file in delivery order.
fn cohort_file(dir: &Path, patients: u64) -> PathBuf {
    let opts = GenerateOptions {
        cohort: CohortOptions { patients, seed: SEED, faults: Default::default() },
        out: dir.join("cohort"),
        format: Format::Ndjson,
        progress: false,
    };
    generate(&opts, &Pseudonymizer::new(KEY.as_bytes())).expect("generate");
    dir.join("cohort/cohort.ndjson")
}

/// Replay's alerts: id -> RiskAssessment bytes (each id once: replay never repeats an alert).
fn offline_alerts(e: &Engine, file: &Path, dir: &Path) -> BTreeMap<String, String> {
    let out = dir.join("replay-alerts.ndjson");
    replay(e, &ReplayOptions { inputs: vec![file.to_path_buf()], alerts: Some(out.clone()), ..ReplayOptions::default() }).expect("replay");
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(out).expect("alerts").lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let id = v["id"].as_str().expect("id").to_string();
        assert!(m.insert(id, l.to_string()).is_none(), "replay repeated an alert id");
    }
    m
}

fn tiers_of(alerts: &BTreeMap<String, String>) -> BTreeSet<String> {
    alerts
        .values()
        .filter_map(|j| serde_json::from_str::<serde_json::Value>(j).ok()?.pointer("/extension/0/valueCode")?.as_str().map(str::to_string))
        .collect()
}

fn run_config(kafka: KafkaConfig, group: &str) -> RunConfig {
    RunConfig::development(kafka, group)
}

fn feed_file(kafka: &KafkaConfig, file: &Path, keyed: bool) -> u64 {
    feed_to(kafka, "fhir.events", file, keyed)
}

fn feed_to(kafka: &KafkaConfig, topic: &str, file: &Path, keyed: bool) -> u64 {
    let mut o = FeedOptions::new(kafka.clone(), topic, FeedSource::Inputs(vec![file.to_path_buf()]));
    o.keyed_by_patient = keyed;
    let s = feed(&o, &Vocabulary::builtin().expect("vocab"), &DecodeOptions::default()).expect("feed");
    assert_eq!(s.failed, 0);
    s.messages
}

/// One in-process service instance.
struct Instance {
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    handle: Option<std::thread::JoinHandle<Result<oncowatch::drivers::kafka::run::RunSummary, oncowatch::drivers::kafka::run::RunError>>>,
}

fn start(cfg: RunConfig) -> Instance {
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let (s, m) = (stop.clone(), metrics.clone());
    let handle = std::thread::spawn(move || serve(Arc::new(engine()), cfg, &HttpOptions::default(), m, Arc::new(Health::default()), s));
    Instance { stop, metrics, handle: Some(handle) }
}

impl Instance {
    fn records(&mut self, topic: &str) -> u64 {
        if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
            let r = self.handle.take().map(|h| h.join());
            panic!("the service stopped early: {r:?}");
        }
        self.metrics.records.with_label_values(&[topic]).get()
    }
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("service thread").expect("service ran cleanly");
        }
    }
}

fn committed(kafka: &KafkaConfig, group: &str, topic: &str) -> i64 {
    let mut cc = client_config(kafka);
    cc.set("group.id", group);
    let c: BaseConsumer = cc.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let out = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .map(|t| t.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum())
        .unwrap_or(0);
    out
}

fn high_watermarks(kafka: &KafkaConfig, topic: &str) -> i64 {
    let c: BaseConsumer = client_config(kafka).set("group.id", "wm").create().expect("consumer");
    (0..PARTITIONS).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(10)).map(|w| w.1).unwrap_or(0)).sum()
}

/// Waits until the group has committed every input record.
fn wait_committed(kafka: &KafkaConfig, group: &str, topic: &str, timeout: Duration) {
    wait_committed_n(kafka, group, topic, high_watermarks(kafka, topic), timeout)
}

/// Waits until the group has committed `want` records of the topic (summed over partitions).
fn wait_committed_n(kafka: &KafkaConfig, group: &str, topic: &str, want: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = committed(kafka, group, topic);
        if got >= want {
            return;
        }
        assert!(Instant::now() < deadline, "group {group} committed {got} of {want} records of {topic}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every record of a topic: (key, value, headers).
/// One record read back: key, value, headers.
type Record = (Vec<u8>, Vec<u8>, Vec<(String, String)>);

fn read_all(kafka: &KafkaConfig, topic: &str) -> Vec<Record> {
    let c: BaseConsumer = client_config(kafka).set("group.id", "reader").set("enable.auto.commit", "false").create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut want = 0;
    for p in 0..PARTITIONS {
        let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        want += hi - lo;
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle = Instant::now();
    // Past the high watermarks, read on until idle: tansu 0.6 reports them short for multi-record batches.
    while ((out.len() as i64) < want || idle.elapsed() < Duration::from_millis(1500)) && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            idle = Instant::now();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.key().unwrap_or(&[]).to_vec(), m.payload().unwrap_or(&[]).to_vec(), headers));
        }
    }
    let _ = c.unassign();
    assert!(out.len() as i64 >= want, "read all of {topic}: {} of {want}", out.len());
    out
}

/// Input offsets the changelog's latest checkpoints cover, summed over partitions: how much of the stream
/// the saved state reflects (independent of the broker's committed-offset bookkeeping).
fn checkpointed(kafka: &KafkaConfig) -> i64 {
    let c: BaseConsumer =
        client_config(kafka).set("group.id", "checkpoints").set("enable.auto.commit", "false").create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("oncowatch.state", p, Offset::Beginning).expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut latest: BTreeMap<i32, i64> = BTreeMap::new();
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_millis(1500) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            idle = Instant::now();
            if m.key() == Some(CHECKPOINT_KEY.as_bytes()) {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(b"{}")).expect("checkpoint json");
                latest.insert(m.partition(), v["offsets"]["fhir.events"].as_i64().unwrap_or(0));
            }
        }
    }
    let _ = c.unassign();
    latest.values().sum()
}

/// Kafka's alerts: id -> every copy's bytes.
fn kafka_alerts(kafka: &KafkaConfig) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, v, h) in read_all(kafka, "oncowatch.alerts") {
        assert!(h.iter().any(|(k, v)| k == "content-type" && v == "application/fhir+json"));
        assert!(h.iter().any(|(k, _)| k == "oncowatch-tier") && h.iter().any(|(k, _)| k == "oncowatch-model-version"));
        let s = String::from_utf8(v).expect("utf8");
        let id = serde_json::from_str::<serde_json::Value>(&s).expect("json")["id"].as_str().expect("id").to_string();
        m.entry(id).or_default().push(s);
    }
    m
}

/// Same ids as replay, and every copy byte-identical to replay's.
fn assert_agree(offline: &BTreeMap<String, String>, kafka: &BTreeMap<String, Vec<String>>) {
    assert!(!offline.is_empty());
    let a: BTreeSet<&String> = offline.keys().collect();
    let b: BTreeSet<&String> = kafka.keys().collect();
    assert_eq!(a, b, "alert ids differ between replay and Kafka");
    for (id, copies) in kafka {
        for c in copies {
            assert_eq!(c, &offline[id], "alert {id}: a copy differs from replay's bytes");
        }
    }
}

fn assert_log_start_zero(broker: &EmbeddedBroker) {
    for t in ["fhir.events", "oncowatch.state"] {
        let lso = broker.log_start_offsets(t).expect("log start");
        assert!(lso.iter().all(|o| *o == 0), "{t}: log start offsets {lso:?} (the mock dropped records)");
    }
}

fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start(PARTITIONS, &TOPICS).expect("embedded broker")
}

#[test]
fn kafka_and_replay_agree_on_a_stream_with_every_tier() {
    let dir = tmp("agree");
    let file = cohort_file(&dir, PATIENTS);
    let offline = offline_alerts(&engine(), &file, &dir);
    let tiers = tiers_of(&offline);
    assert_eq!(tiers, ["high", "urgent", "watch"].iter().map(|s| s.to_string()).collect(), "the test stream must raise every tier");
    let b = broker();
    let k = b.kafka_config();
    feed_file(&k, &file, true);
    let i = start(run_config(k.clone(), "agree"));
    wait_committed(&k, "agree", "fhir.events", Duration::from_secs(240));
    i.stop();
    assert_agree(&offline, &kafka_alerts(&k));
    assert_log_start_zero(&b);
}

#[test]
fn two_instances_with_a_rebalance_give_the_same_alerts() {
    let dir = tmp("rebalance");
    let file = cohort_file(&dir, PATIENTS);
    let offline = offline_alerts(&engine(), &file, &dir);
    let b = broker();
    let k = b.kafka_config();
    feed_file(&k, &file, true);
    let mut first = start(run_config(k.clone(), "pair"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.records("fhir.events") < 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = start(run_config(k.clone(), "pair"));
    let total = high_watermarks(&k, "fhir.events");
    let deadline = Instant::now() + Duration::from_secs(240);
    // Progress as the changelog's checkpoints record it (what a restore would resume from).
    while checkpointed(&k) < total {
        assert!(Instant::now() < deadline, "the state reflects {} of {total} input records", checkpointed(&k));
        first.records("fhir.events");
    }
    assert!(second.metrics.rebalances.get() > 0 && first.metrics.rebalances.get() > 1, "a rebalance happened");
    second.stop();
    first.stop();
    let kafka = kafka_alerts(&k);
    assert_agree(&offline, &kafka);
    assert_log_start_zero(&b);
}

#[test]
fn poison_records_go_to_the_dlq_and_a_broker_outage_loses_nothing() {
    let dir = tmp("dlq");
    let file = cohort_file(&dir, 30);
    // A poison record in the middle of the stream: truncated JSON, keyed to a real patient.
    let text = std::fs::read_to_string(&file).expect("cohort");
    let mut lines: Vec<&str> = text.lines().collect();
    let poison = "{\"resourceType\": \"Observation\", \"status\": ";
    let mid = lines.len() / 2;
    lines.insert(mid, poison);
    let with_poison = dir.join("with-poison.ndjson");
    std::fs::write(&with_poison, lines.join("\n") + "\n").expect("write");
    let offline = offline_alerts(&engine(), &with_poison, &dir);
    let b = broker();
    let k = b.kafka_config();
    feed_file(&k, &with_poison, true);
    let i = start(run_config(k.clone(), "dlq"));
    std::thread::sleep(Duration::from_secs(5));
    b.down().expect("down");
    std::thread::sleep(Duration::from_secs(3));
    b.up().expect("up");
    wait_committed(&k, "dlq", "fhir.events", Duration::from_secs(240));
    i.stop();
    let dlq = read_all(&k, "oncowatch.dlq");
    assert_eq!(dlq.len(), 1, "exactly the poison record");
    let (_, value, headers) = &dlq[0];
    assert_eq!(value.as_slice(), poison.as_bytes(), "the DLQ keeps the original bytes");
    let h: BTreeMap<&str, &str> = headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(h.get("oncowatch-reason"), Some(&"invalid_json"));
    assert_eq!(h.get("oncowatch-source-topic"), Some(&"fhir.events"));
    for key in ["oncowatch-message", "oncowatch-source-partition", "oncowatch-source-offset", "oncowatch-entries"] {
        assert!(h.contains_key(key), "DLQ header {key}");
    }
    // Unkeyed input without repartitioning still finds patients in the records themselves.
    assert_agree(&offline, &kafka_alerts(&k));
    assert_log_start_zero(&b);
}

#[test]
fn unkeyed_input_with_repartitioning_gives_the_same_alerts() {
    let dir = tmp("repartition");
    let file = cohort_file(&dir, 40);
    let offline = offline_alerts(&engine(), &file, &dir);
    let b = broker();
    let k = b.kafka_config();
    // Unkeyed raw input keeps each patient's order only within a partition: one raw partition here (the
    // repartition and state topics keep 3).
    b.create_topic("fhir.raw", 1).expect("raw topic");
    feed_to(&k, "fhir.raw", &file, false);
    let mut cfg = run_config(k.clone(), "unkeyed");
    cfg.keyed_by_patient = false;
    cfg.input_topics = vec!["fhir.raw".into()];
    let i = start(cfg);
    let deadline = Instant::now() + Duration::from_secs(240);
    let raw_total: i64 = b.watermarks("fhir.raw").expect("watermarks").iter().map(|w| w.1).sum();
    loop {
        let mut cc = client_config(&k);
        cc.set("group.id", "unkeyed-repartition");
        let c: BaseConsumer = cc.create().expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("fhir.raw", 0);
        let done: i64 = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .map(|t| t.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum())
            .unwrap_or(0);
        if done >= raw_total || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_committed(&k, "unkeyed", "oncowatch.repartition", Duration::from_secs(240));
    i.stop();
    let kafka = kafka_alerts(&k);
    let a: BTreeSet<&String> = offline.keys().collect();
    let b2: BTreeSet<&String> = kafka.keys().collect();
    assert_eq!(a, b2, "alert ids with repartitioning differ from keyed replay");
    assert_log_start_zero(&b);
}

#[test]
fn exactly_once_code_path_runs_against_the_embedded_broker() {
    let dir = tmp("eos");
    let file = cohort_file(&dir, 25);
    let offline = offline_alerts(&engine(), &file, &dir);
    let b = broker();
    let k = b.kafka_config();
    feed_file(&k, &file, true);
    let mut cfg = run_config(k.clone(), "eos");
    cfg.delivery = Delivery::ExactlyOnce;
    let mut i = start(cfg);
    // The mock does not show offsets sent in a transaction as committed: wait on the records read instead.
    let want = high_watermarks(&k, "fhir.events") as u64;
    let deadline = Instant::now() + Duration::from_secs(240);
    while i.records("fhir.events") < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    i.stop();
    let kafka = kafka_alerts(&k);
    assert_agree(&offline, &kafka);
    let state = read_all(&k, "oncowatch.state");
    assert!(state.iter().any(|(key, _, _)| key.as_slice() == CHECKPOINT_KEY.as_bytes()), "checkpoints written in the transaction");
}

/// A service instance as a child process (`oncowatch run`), so it can be killed abruptly.
fn spawn_run(dir: &Path, bootstrap: &str, group: &str) -> std::process::Child {
    let cfg = dir.join(format!("{group}.toml"));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.json");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\n[run]\ngroup_id = \"{group}\"\nbroker_compacts = false\nflush_records = 100\nflush_interval_ms = 200\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[model]\npath = \"{}\"\n[alerts]\nmax_event_lag_days = 1000000\n",
            model.display()
        ),
    )
    .expect("config");
    std::process::Command::new(env!("CARGO_BIN_EXE_oncowatch"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("ONCOWATCH__PRIVACY__PSEUDONYM_KEY", KEY)
        .env("RUST_LOG", std::env::var("ONCOWATCH_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{group}-{}.log", Instant::now().elapsed().as_nanos()))).expect("log"))
        .spawn()
        .expect("spawn oncowatch run")
}

#[test]
fn restart_mid_stream_gives_the_same_alerts_and_state() {
    let dir = tmp("restart");
    let b = broker();
    restart_mid_stream(&dir, &b.kafka_config(), PATIENTS);
    assert_log_start_zero(&b);
}

fn restart_mid_stream(dir: &Path, k: &KafkaConfig, patients: u64) {
    let file = cohort_file(dir, patients);
    let e = engine();
    let offline = offline_alerts(&e, &file, dir);
    let replayed =
        replay(&e, &ReplayOptions { inputs: vec![file.clone()], alerts: Some(dir.join("ignored.ndjson")), ..ReplayOptions::default() })
            .expect("replay");
    let total = feed_file(k, &file, true) as i64;
    let mut first = spawn_run(dir, &k.brokers, "restart");
    // Kill it abruptly once part of the stream is committed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpointed(k) < total / 3 {
        assert!(Instant::now() < deadline, "the first instance made no progress");
        assert!(first.try_wait().expect("wait").is_none(), "the first instance exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill().expect("kill");
    let _ = first.wait();
    let mut second = spawn_run(dir, &k.brokers, "restart");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = checkpointed(k);
        if done >= total {
            break;
        }
        assert!(Instant::now() < deadline, "the state reflects {done} of {total} input records");
        assert!(second.try_wait().expect("wait").is_none(), "the second instance exited early");
    }
    // Graceful stop: SIGTERM.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(second.id().to_string()).status();
    let status = second.wait().expect("wait");
    assert!(status.success(), "graceful stop exits 0");
    let kafka = kafka_alerts(k);
    assert_agree(&offline, &kafka);
    // Nothing lost: the changelog's last state of every patient equals replay's final state.
    let mut changelog: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value, _) in read_all(k, "oncowatch.state") {
        if key.as_slice() != CHECKPOINT_KEY.as_bytes() {
            changelog.insert(String::from_utf8(key).expect("utf8"), value);
        }
    }
    assert_eq!(changelog.len(), replayed.states.len(), "one state per patient");
    for s in replayed.states.values() {
        let pseudo = e.pseudonyms.pseudonym(&s.key).to_string();
        assert_eq!(changelog.get(&pseudo), Some(&s.encode()), "state of one patient differs from replay's");
    }
}

/// tansu on 127.0.0.1 with the design's topics (3 partitions; the changelog compacted).
fn tansu() -> Option<common::tansu::TansuGuard> {
    let t = common::tansu::start_tansu()?;
    common::tansu::create_topics(
        &t.bootstrap,
        &[("fhir.events", PARTITIONS), ("oncowatch.alerts", PARTITIONS), ("oncowatch.dlq", PARTITIONS)],
        &[],
    )
    .expect("topics");
    common::tansu::create_topics(&t.bootstrap, &[("oncowatch.state", PARTITIONS)], &[("cleanup.policy", "compact")]).expect("state topic");
    Some(t)
}

#[test]
fn tansu_kafka_and_replay_agree() {
    let Some(t) = tansu() else {
        eprintln!("tansu not installed: skipped (CI installs it with .ci/install-tansu.sh)");
        return;
    };
    let dir = tmp("tansu-agree");
    let file = cohort_file(&dir, 12);
    let offline = offline_alerts(&engine(), &file, &dir);
    let k = KafkaConfig::with_brokers(t.bootstrap.clone());
    let n = feed_file(&k, &file, true) as i64;
    let i = start(run_config(k.clone(), "tansu-agree"));
    wait_committed_n(&k, "tansu-agree", "fhir.events", n, Duration::from_secs(300));
    i.stop();
    assert_agree(&offline, &kafka_alerts(&k));
}

#[test]
fn tansu_restart_mid_stream_gives_the_same_alerts_and_state() {
    let Some(t) = tansu() else {
        eprintln!("tansu not installed: skipped (CI installs it with .ci/install-tansu.sh)");
        return;
    };
    let dir = tmp("tansu-restart");
    restart_mid_stream(&dir, &KafkaConfig::with_brokers(t.bootstrap.clone()), 12);
}
