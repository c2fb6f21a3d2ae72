mod common;
use oncowatch::drivers::kafka::broker::{assign_only_consumer, watermarks};
use oncowatch::drivers::kafka::client::{client_config, KafkaConfig};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;
#[test]
fn probe() {
    let t = common::tansu::start_tansu().unwrap();
    t.create_topics(&[("a", 1), ("b", 1)]).unwrap();
    let k = KafkaConfig::with_brokers(&t.bootstrap);
    let p: BaseProducer = client_config(&k).set("linger.ms", "50").create().unwrap();
    for i in 0..5 { p.send(BaseRecord::<str, str>::to("a").payload(&format!("m{i}"))).unwrap(); }
    p.flush(Duration::from_secs(10)).unwrap();
    for i in 0..5 { p.send(BaseRecord::<str, str>::to("b").payload(&format!("m{i}"))).unwrap(); p.flush(Duration::from_secs(10)).unwrap(); }
    for _ in 0..3 {
    eprintln!("PROBE a (one batch of 5): {:?}", watermarks(&k, "a", Duration::from_secs(5)));
    eprintln!("PROBE b (five batches of 1): {:?}", watermarks(&k, "b", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(300));
    }
    let c = assign_only_consumer(&k).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("a", 0, rdkafka::Offset::Beginning).unwrap();
    tpl.add_partition_offset("b", 0, rdkafka::Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < end {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) { use rdkafka::Message; eprintln!("PROBE read {} {}", m.topic(), m.offset()); }
    }
    let (lo, hi) = c.fetch_watermarks("a", 0, Duration::from_secs(5)).unwrap();
    eprintln!("PROBE a via same consumer: {lo} {hi}; position {:?}", c.position());
}
