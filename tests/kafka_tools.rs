//! The Kafka tools: the embedded broker (library and `oncowatch broker`), `feed` (files, generator, DLQ
//! re-drive, per-patient keys and Bundle splitting), against the mock cluster and, when installed, tansu.
//!
//! Streams stay far below the mock's ~5 MiB per partition, and every test asserts log-start offsets stay 0.
//! Consumers here only assign partitions (no group), so dropping them never blocks.

mod common;

use oncowatch::core::decode::{decode_record, DecodeOptions, Decoded};
use oncowatch::core::identity::PatientKey;
use oncowatch::core::vocabulary::Vocabulary;
use oncowatch::drivers::generate::CohortOptions;
use oncowatch::drivers::kafka::broker::{assign_only_consumer, watermarks, EmbeddedBroker, DESIGN_TOPICS};
use oncowatch::drivers::kafka::client::KafkaConfig;
use oncowatch::drivers::kafka::feed::{feed, split_record, FeedError, FeedOptions, FeedSource, FeedSummary};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/fhir")
}

fn vocab() -> Vocabulary {
    Vocabulary::builtin().expect("built-in vocabulary")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oncowatch-kafka-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// One message read back: partition, key, value.
type Read = (i32, Option<String>, Vec<u8>);

/// Every message of `topic` from the log start to the high watermark, then on until the topic is idle for
/// half a second (tansu 0.6 under-reports high watermarks: the last batch's base offset + 1), within `BOUND`.
fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
    let k = KafkaConfig::with_brokers(bootstrap);
    let marks = watermarks(&k, topic, BOUND).expect("watermarks");
    let consumer = assign_only_consumer(&k).expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for (p, (lo, hi)) in marks.iter().enumerate() {
        let p = p as i32;
        tpl.add_partition_offset(topic, p, Offset::Offset(*lo)).expect("tpl");
        if hi > lo {
            remaining.insert(p, *hi);
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + BOUND;
    let mut idle_since: Option<Instant> = None;
    loop {
        assert!(Instant::now() < deadline, "reading {topic}: partitions {remaining:?} not read to their high watermark within {BOUND:?}");
        if remaining.is_empty() && idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(500) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle_since = None;
                out.push((
                    m.partition(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    m.payload().unwrap_or_default().to_vec(),
                ));
                if remaining.get(&m.partition()).is_some_and(|hi| m.offset() + 1 >= *hi) {
                    remaining.remove(&m.partition());
                }
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    consumer.unassign().expect("unassign");
    out
}

fn assert_log_start_zero(broker: &EmbeddedBroker, topics: &[&str]) {
    for t in topics {
        let starts = broker.log_start_offsets(t).expect("log start offsets");
        assert!(starts.iter().all(|o| *o == 0), "{t}: log-start offsets {starts:?} rose above 0 (the mock dropped messages)");
    }
}

fn feed_ok(opts: &FeedOptions) -> FeedSummary {
    match feed(opts, &vocab(), &DecodeOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("feed: {e}"),
    }
}

#[test]
fn embedded_broker_creates_the_design_topics_with_the_partitions_asked() {
    let t0 = Instant::now();
    let broker = EmbeddedBroker::start(4, &DESIGN_TOPICS).expect("start");
    let bootstrap = broker.bootstrap();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{bootstrap}");
    for t in DESIGN_TOPICS {
        let marks = broker.watermarks(t).expect("watermarks");
        assert_eq!(marks, vec![(0, 0); 4], "{t}");
    }
    broker.create_topic("extra.topic", 2).expect("create");
    assert_eq!(broker.log_start_offsets("extra.topic").expect("offsets"), vec![0, 0]);
    assert!(broker.create_topic("bad topic", 1).is_err());
    assert!(broker.create_topic("x", 0).is_err());
    assert!(EmbeddedBroker::start(0, &[]).is_err());
    // Broker 1 can go down and come back for outage tests.
    broker.down().expect("down");
    broker.up().expect("up");
    assert_eq!(broker.watermarks("fhir.events").expect("after up").len(), 4);
    eprintln!("embedded broker test: {:?}", t0.elapsed());
}

#[test]
fn broker_command_prints_its_bootstrap_first_and_exits_0_on_sigterm() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oncowatch"))
        .args(["broker", "--partitions", "2", "--topics", "in.a,in.b"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn oncowatch broker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(BOUND).expect("a bootstrap line within the bound");
    let bootstrap = line.trim().to_string();
    assert!(bootstrap.starts_with("127.0.0.1:"), "first line: {line:?}");
    let k = KafkaConfig::with_brokers(&bootstrap);
    assert_eq!(watermarks(&k, "in.a", BOUND).expect("in.a").len(), 2);
    assert_eq!(watermarks(&k, "in.b", BOUND).expect("in.b").len(), 2);
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + BOUND;
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("oncowatch broker did not exit within {BOUND:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn feed_of_the_examples_is_keyed_by_patient() {
    let broker = EmbeddedBroker::start(3, &DESIGN_TOPICS).expect("start");
    let mut opts = FeedOptions::new(broker.kafka_config(), "fhir.events", FeedSource::Inputs(vec![examples()]));
    opts.timeout = BOUND;
    let s = feed_ok(&opts);
    // examples/fhir: one Bundle (patient demo-2) and 8 NDJSON lines of patient demo-1, of which an
    // Encounter without subject and a truncated line name no patient.
    assert_eq!((s.records, s.messages, s.delivered), (9, 9, 9), "{s:?}");
    assert_eq!((s.keyed, s.unkeyed, s.split, s.oversize), (7, 2, 0, 0), "{s:?}");
    let got = read_all(&broker.bootstrap(), "fhir.events");
    assert_eq!(got.len(), 9);
    let keys: BTreeSet<&str> = got.iter().filter_map(|(_, k, _)| k.as_deref()).collect();
    assert_eq!(keys, BTreeSet::from(["Patient/demo-1", "Patient/demo-2"]));
    // One partition per patient, and the patient's records in file order.
    let mut partitions: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (p, k, _) in &got {
        if let Some(k) = k {
            partitions.entry(k).or_default().insert(*p);
        }
    }
    assert!(partitions.values().all(|ps| ps.len() == 1), "{partitions:?}");
    let demo1: Vec<String> = got
        .iter()
        .filter(|(_, k, _)| k.as_deref() == Some("Patient/demo-1"))
        .map(|(_, _, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let file = std::fs::read_to_string(examples().join("patient-demo-1.ndjson")).expect("read");
    let expected: Vec<&str> = file.lines().filter(|l| l.contains("Patient/demo-1") || l.contains("\"id\": \"demo-1\"")).collect();
    assert_eq!(demo1, expected);
    // Unkeyed with --keyed-by-patient false.
    opts.keyed_by_patient = false;
    let s = feed_ok(&opts);
    assert_eq!((s.messages, s.keyed, s.unkeyed), (9, 0, 9));
    assert_log_start_zero(&broker, &["fhir.events"]);
}

fn two_patient_bundle() -> String {
    serde_json::json!({
        "resourceType": "Bundle", "id": "two", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "id": "pa", "gender": "female", "birthDate": "1960"}},
            {"fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000002",
             "resource": {"resourceType": "Patient", "id": "pb", "gender": "male", "birthDate": "1950"}},
            {"resource": {"resourceType": "Condition", "id": "ca",
              "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C61"}]},
              "subject": {"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000002"},
              "onsetDateTime": "2023-01-01"}},
            {"resource": {"resourceType": "Observation", "id": "oa", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "2039-6"}]},
              "subject": {"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"},
              "effectiveDateTime": "2023-02-01", "valueQuantity": {"value": 4.0, "unit": "ng/mL"}}},
            {"resource": {"resourceType": "Encounter", "id": "e", "status": "finished"}}
        ]
    })
    .to_string()
}

/// Every event of `bytes`, decoded as `run` would with `key`, belongs to `key`.
fn events_of(bytes: &[u8], key: Option<&PatientKey>) -> Vec<PatientKey> {
    decode_record(bytes, &vocab(), &DecodeOptions::default(), key)
        .into_iter()
        .filter_map(|d| match d.decoded {
            Decoded::Event(ev) => Some(ev.patient),
            _ => None,
        })
        .collect()
}

#[test]
fn a_multi_patient_bundle_is_split_per_patient_and_references_still_resolve() {
    let bundle = two_patient_bundle();
    let all_events = events_of(bundle.as_bytes(), None);
    assert_eq!(all_events.len(), 4);
    let split = split_record(bundle.as_bytes(), &vocab(), &DecodeOptions::default(), true, 1_000_000);
    assert_eq!(split.oversize, 0);
    let keys: Vec<Option<&str>> = split.messages.iter().map(|m| m.key.as_ref().map(|k| k.as_str())).collect();
    assert_eq!(keys, vec![Some("Patient/pa"), Some("Patient/pb"), None]);
    let mut seen = 0;
    for m in &split.messages {
        let events = events_of(&m.value, m.key.as_ref());
        if let Some(k) = &m.key {
            assert_eq!(events.len(), 2, "{}", String::from_utf8_lossy(&m.value));
            assert!(events.iter().all(|e| e == k));
        }
        seen += events.len();
        let v: serde_json::Value = serde_json::from_slice(&m.value).expect("valid JSON");
        assert_eq!(v["type"], "transaction");
        assert_eq!(v["id"], "two");
    }
    assert_eq!(seen, 4, "every event exactly once");
    // Unkeyed and small: sent whole, byte for byte.
    let whole = split_record(bundle.as_bytes(), &vocab(), &DecodeOptions::default(), false, 1_000_000);
    assert_eq!(whole.messages.len(), 1);
    assert_eq!(whole.messages[0].value, bundle.as_bytes());
    assert!(whole.messages[0].key.is_none());
    // Too large for the message size: split per patient even when unkeyed.
    let max = 1024 + bundle.len() - 1;
    let big = split_record(bundle.as_bytes(), &vocab(), &DecodeOptions::default(), false, max);
    assert_eq!(big.messages.len(), 3);
    assert!(big.messages.iter().all(|m| m.key.is_none()));
    for m in &big.messages {
        assert!(m.value.len() <= max - 1024, "{}", m.value.len());
    }
    // Too small for even one resource: counted, not sent.
    let tiny = split_record(bundle.as_bytes(), &vocab(), &DecodeOptions::default(), true, 1100);
    assert!(tiny.oversize > 0);
}

#[test]
fn a_single_patient_bundle_over_the_limit_is_chunked_repeating_the_patient_entry() {
    let obs: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({"resource": {"resourceType": "Observation", "id": format!("o{i}"),
                "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2039-6"}]},
                "subject": {"reference": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"},
                "effectiveDateTime": format!("2023-02-{:02}", i + 1),
                "valueQuantity": {"value": 4.0, "unit": "ng/mL"}}})
        })
        .collect();
    let mut entries = vec![serde_json::json!({"fullUrl": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001",
        "resource": {"resourceType": "Patient", "id": "pc", "gender": "female", "birthDate": "1960"}})];
    entries.extend(obs);
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string();
    let key = PatientKey::from_id("pc");
    assert_eq!(events_of(bundle.as_bytes(), None).len(), 11);
    // Room for the Patient entry and three or so Observations per message.
    let max = 1024 + 1300;
    let split = split_record(bundle.as_bytes(), &vocab(), &DecodeOptions::default(), true, max);
    assert_eq!(split.oversize, 0);
    assert!(split.messages.len() >= 3, "{}", split.messages.len());
    let mut observations = 0;
    for m in &split.messages {
        assert!(m.value.len() <= max - 1024, "{}", m.value.len());
        assert_eq!(m.key.as_ref(), Some(&key));
        let text = String::from_utf8_lossy(&m.value);
        assert!(text.contains("\"id\":\"pc\""), "every chunk carries the Patient entry: {text}");
        let events = events_of(&m.value, Some(&key));
        assert!(events.iter().all(|e| *e == key));
        observations += events.len() - 1;
    }
    assert_eq!(observations, 10, "every Observation exactly once");
}

#[test]
fn feed_splits_a_multi_patient_bundle_into_keyed_messages() {
    let broker = EmbeddedBroker::start(3, &["fhir.events"]).expect("start");
    let dir = temp_dir("split");
    std::fs::write(dir.join("two.json"), two_patient_bundle()).expect("write");
    let mut opts = FeedOptions::new(broker.kafka_config(), "fhir.events", FeedSource::Inputs(vec![dir.clone()]));
    opts.timeout = BOUND;
    let s = feed_ok(&opts);
    assert_eq!((s.records, s.messages, s.keyed, s.unkeyed, s.split), (1, 3, 2, 1, 1), "{s:?}");
    let got = read_all(&broker.bootstrap(), "fhir.events");
    let keys: BTreeSet<Option<String>> = got.iter().map(|(_, k, _)| k.clone()).collect();
    assert_eq!(keys, BTreeSet::from([None, Some("Patient/pa".into()), Some("Patient/pb".into())]));
    assert_log_start_zero(&broker, &["fhir.events"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn feed_of_a_generated_cohort_keys_every_resource() {
    let broker = EmbeddedBroker::start(3, &["fhir.events"]).expect("start");
    let cohort = CohortOptions { patients: 3, seed: 7, ..Default::default() };
    let mut opts = FeedOptions::new(broker.kafka_config(), "fhir.events", FeedSource::Generate(cohort));
    opts.timeout = BOUND;
    let s = feed_ok(&opts);
    assert!(s.records > 0 && s.messages == s.records && s.keyed == s.messages, "{s:?}");
    let got = read_all(&broker.bootstrap(), "fhir.events");
    assert_eq!(got.len() as u64, s.messages);
    let keys: BTreeSet<&str> = got.iter().filter_map(|(_, k, _)| k.as_deref()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("Patient/")));
    assert_log_start_zero(&broker, &["fhir.events"]);
}

#[test]
fn feed_from_dlq_redrives_keys_and_values() {
    let broker = EmbeddedBroker::start(2, &["fhir.events", "oncowatch.dlq"]).expect("start");
    let producer: BaseProducer = oncowatch::drivers::kafka::client::client_config(&broker.kafka_config()).create().expect("producer");
    let records: Vec<(Option<String>, String)> = (0..7)
        .map(|i| {
            let key = (i % 3 != 0).then(|| format!("Patient/p{i}"));
            (key, format!("{{\"resourceType\":\"Observation\",\"id\":\"o{i}\"}}"))
        })
        .collect();
    for (k, v) in &records {
        let headers = OwnedHeaders::new().insert(Header { key: "oncowatch-reason", value: Some("invalid_fhir") });
        let mut rec = BaseRecord::<str, str>::to("oncowatch.dlq").payload(v).headers(headers);
        if let Some(k) = k {
            rec = rec.key(k);
        }
        producer.send(rec).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(BOUND).expect("flush");
    let mut opts = FeedOptions::new(broker.kafka_config(), "fhir.events", FeedSource::Dlq("oncowatch.dlq".into()));
    opts.timeout = BOUND;
    let s = feed_ok(&opts);
    assert_eq!((s.records, s.messages, s.delivered), (7, 7, 7), "{s:?}");
    let got: BTreeSet<(Option<String>, String)> =
        read_all(&broker.bootstrap(), "fhir.events").into_iter().map(|(_, k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
    assert_eq!(got, records.iter().cloned().collect());
    // The same topic as source and destination is refused.
    let mut same = opts.clone();
    same.topic = "oncowatch.dlq".into();
    assert!(matches!(feed(&same, &vocab(), &DecodeOptions::default()), Err(FeedError::Invalid(_))));
    assert_log_start_zero(&broker, &["fhir.events", "oncowatch.dlq"]);
}

#[test]
fn feed_to_a_missing_topic_fails_fast() {
    let broker = EmbeddedBroker::start(1, &["fhir.events"]).expect("start");
    let mut opts = FeedOptions::new(broker.kafka_config(), "no.such.topic", FeedSource::Inputs(vec![examples()]));
    opts.timeout = Duration::from_secs(5);
    let t0 = Instant::now();
    let r = feed(&opts, &vocab(), &DecodeOptions::default());
    assert!(matches!(r, Err(FeedError::Kafka(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn feed_works_against_tansu() {
    let Some(tansu) = common::tansu::start_tansu() else {
        return;
    };
    tansu.create_topics(&[("fhir.events", 3), ("redriven", 3)]).unwrap_or_else(|e| panic!("{e}\n{}", tansu.log_text()));
    let mut opts = FeedOptions::new(KafkaConfig::with_brokers(&tansu.bootstrap), "fhir.events", FeedSource::Inputs(vec![examples()]));
    opts.timeout = BOUND;
    let s = match feed(&opts, &vocab(), &DecodeOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("feed to tansu: {e}\n{}", tansu.log_text()),
    };
    assert_eq!((s.messages, s.delivered, s.keyed), (9, 9, 7), "{s:?}");
    let got = read_all(&tansu.bootstrap, "fhir.events");
    assert_eq!(got.len(), 9);
    let keys: BTreeSet<&str> = got.iter().filter_map(|(_, k, _)| k.as_deref()).collect();
    assert_eq!(keys, BTreeSet::from(["Patient/demo-1", "Patient/demo-2"]));
    // Re-drive reads past tansu's under-reported high watermarks and loses nothing.
    let mut redrive = FeedOptions::new(KafkaConfig::with_brokers(&tansu.bootstrap), "redriven", FeedSource::Dlq("fhir.events".into()));
    redrive.timeout = BOUND;
    let s = match feed(&redrive, &vocab(), &DecodeOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("re-drive on tansu: {e}\n{}", tansu.log_text()),
    };
    assert_eq!((s.records, s.delivered), (9, 9), "{s:?}");
    assert_eq!(read_all(&tansu.bootstrap, "redriven").len(), 9);
}
