//! The embedded broker: librdkafka's mock cluster (rdkafka's [`MockCluster`]) in this process, for
//! `oncowatch broker`, `oncowatch demo` and the integration tests.
//!
//! [`EmbeddedBroker::start`] creates a one-broker mock cluster listening on 127.0.0.1 (an ephemeral port) and
//! creates the topics asked for ([`DESIGN_TOPICS`] by default) with a partition count. Any Kafka client,
//! in this process or another, reaches it at [`EmbeddedBroker::bootstrap`] while the value lives; dropping
//! it destroys the cluster and everything in it.
//!
//! # Limits (measured with rdkafka 0.39 / librdkafka 2.12; DESIGN.md "The embedded broker")
//!
//! - In memory only; nothing survives the process.
//! - Topics are created with [`EmbeddedBroker::create_topic`]: the admin CreateTopics call is not supported
//!   by the mock. Producing to an unknown topic auto-creates it with the mock's default partition count.
//! - No compaction (`cleanup.policy=compact` is not honoured).
//! - About 5 MiB kept per partition: older message sets are dropped and the log-start offset rises. Tests
//!   keep their streams below that and assert [`EmbeddedBroker::log_start_offsets`] stay 0; a changelog
//!   whose log-start offset rose here means lost state.
//! - Transactions run as a code path (every call returns Ok) but a `read_committed` consumer still sees
//!   aborted messages, and offsets sent in a transaction do not show as committed: exactly-once can be
//!   exercised here, not verified.
//! - Consumer groups, commits and resume at committed offsets work; the first assignment waits about 3 s
//!   (initial rebalance delay).
//! - Producing one message at a time and waiting for each costs about 5 ms (linger): pipeline sends.
//! - [`EmbeddedBroker::down`] / [`EmbeddedBroker::up`] take broker 1 down and up, for outage tests.
//! - Dropping a consumer that joined a group can block for many seconds (close hang): unsubscribe and
//!   close it explicitly, with a bound. The assign-only consumers of [`assign_only_consumer`] never join
//!   their group and close at once.

use super::client::{client_config, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The topics of DESIGN.md's Kafka contract, created by `oncowatch broker` unless `--topics` says otherwise.
pub const DESIGN_TOPICS: [&str; 6] =
    ["fhir.events", "oncowatch.alerts", "oncowatch.scores", "oncowatch.dlq", "oncowatch.state", "oncowatch.repartition"];

/// Default partition count of the embedded broker's topics.
pub const DEFAULT_PARTITIONS: i32 = 3;

/// The id of the embedded broker's only broker (mock broker ids start at 1).
pub const BROKER_ID: i32 = 1;

/// How long metadata and watermark requests to the embedded broker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure of the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot start the mock cluster: {0}")]
    Start(String),
    #[error("invalid partition count {0}: must be 1 or more")]
    Partitions(i32),
    #[error("invalid topic name {0:?}")]
    Topic(String),
    #[error("cannot create topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
    #[error("broker {BROKER_ID} {what}: {message}")]
    Broker { what: &'static str, message: String },
    #[error("topic {topic}: {message}")]
    Metadata { topic: String, message: String },
}

/// librdkafka's mock cluster with one broker, and the topics created on it.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

// SAFETY: `MockCluster` is not `Send`/`Sync` only because it holds the raw `rd_kafka_mock_cluster_t`
// pointer. The owned client behind it is `Send + Sync`, the bootstrap string is copied out at start, and
// every mock operation used here (`rd_kafka_mock_topic_create`, `rd_kafka_mock_broker_set_down/up`, …)
// sends an op to the mock cluster's own thread through librdkafka's thread-safe op queue and waits for the
// reply (`rd_kafka_op_req`). The cluster is destroyed only by `Drop`, which needs the value by `&mut`.
unsafe impl Send for EmbeddedBroker {}
// SAFETY: as above: no `&self` method mutates state outside librdkafka's thread-safe op queue.
unsafe impl Sync for EmbeddedBroker {}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster and creates `topics` with `partitions` partitions each.
    pub fn start(partitions: i32, topics: &[&str]) -> Result<Self, BrokerError> {
        if partitions < 1 {
            return Err(BrokerError::Partitions(partitions));
        }
        let cluster = MockCluster::new(1).map_err(|e| BrokerError::Start(e.to_string()))?;
        let bootstrap = cluster.bootstrap_servers();
        if bootstrap.is_empty() {
            return Err(BrokerError::Start("no bootstrap address".into()));
        }
        let broker = EmbeddedBroker { cluster, bootstrap };
        for t in topics {
            broker.create_topic(t, partitions)?;
        }
        Ok(broker)
    }

    /// The bootstrap address (`127.0.0.1:PORT`).
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// Client configuration for this broker (plaintext, client id `oncowatch`).
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig::with_brokers(self.bootstrap.clone())
    }

    /// Creates a topic (replication factor 1). Creating an existing topic is an error of the mock.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BrokerError> {
        if partitions < 1 {
            return Err(BrokerError::Partitions(partitions));
        }
        if !valid_topic_name(topic) {
            return Err(BrokerError::Topic(topic.to_string()));
        }
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| BrokerError::CreateTopic { topic: topic.to_string(), message: e.to_string() })
    }

    /// Takes broker 1 down: its connections close and it refuses new ones until [`up`](Self::up).
    pub fn down(&self) -> Result<(), BrokerError> {
        self.cluster.broker_down(BROKER_ID).map_err(|e| BrokerError::Broker { what: "down", message: e.to_string() })
    }

    /// Brings broker 1 back up.
    pub fn up(&self) -> Result<(), BrokerError> {
        self.cluster.broker_up(BROKER_ID).map_err(|e| BrokerError::Broker { what: "up", message: e.to_string() })
    }

    /// The low and high watermarks of every partition of `topic`, in partition order.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<(i64, i64)>, BrokerError> {
        watermarks(&self.kafka_config(), topic, REQUEST_TIMEOUT)
            .map_err(|message| BrokerError::Metadata { topic: topic.to_string(), message })
    }

    /// The log-start offset of every partition of `topic`: all 0 unless the mock dropped old messages
    /// (about 5 MiB per partition), which tests assert does not happen.
    pub fn log_start_offsets(&self, topic: &str) -> Result<Vec<i64>, BrokerError> {
        Ok(self.watermarks(topic)?.into_iter().map(|(lo, _)| lo).collect())
    }

    /// The mock cluster itself, for what the wrappers do not cover (request errors, round-trip delays).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// Kafka's topic name rule: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A consumer that only assigns partitions and never commits. librdkafka needs a `group.id` even for
/// `assign`; each consumer gets a throwaway one (`oncowatch-reader-<pid>-<n>`) that never joins: there is
/// no group to leave, so dropping it does not hang.
pub fn assign_only_consumer(k: &KafkaConfig) -> Result<BaseConsumer, String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut c = client_config(k);
    let n = N.fetch_add(1, Ordering::Relaxed);
    c.set("group.id", format!("oncowatch-reader-{}-{n}", std::process::id()));
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("auto.offset.reset", "earliest");
    c.set("enable.partition.eof", "false");
    c.create::<BaseConsumer>().map_err(|e| e.to_string())
}

/// Partition count of `topic` (an error when the topic does not exist).
pub fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<i32, String> {
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("metadata: {e}"))?;
    let t = md.topics().iter().find(|t| t.name() == topic).ok_or_else(|| "not in the metadata".to_string())?;
    if let Some(e) = t.error() {
        return Err(format!("metadata: {}", rdkafka::error::RDKafkaErrorCode::from(e)));
    }
    if t.partitions().is_empty() {
        return Err("no partitions".into());
    }
    i32::try_from(t.partitions().len()).map_err(|_| "too many partitions".to_string())
}

/// The (low, high) watermarks of every partition of `topic` on the brokers of `k`.
pub fn watermarks(k: &KafkaConfig, topic: &str, timeout: Duration) -> Result<Vec<(i64, i64)>, String> {
    let consumer = assign_only_consumer(k)?;
    let n = partition_count(&consumer, topic, timeout)?;
    (0..n).map(|p| consumer.fetch_watermarks(topic, p, timeout).map_err(|e| format!("partition {p}: watermarks: {e}"))).collect()
}
