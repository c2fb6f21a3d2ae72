//! The one metric vocabulary every driver uses (prefix `oncowatch_`). Names and label sets are stable
//! API, like reason codes.
//!
//! Rules, as in a component spec: every record read increments `records_total`; every resource increments
//! `resources_total` with its outcome and reason (so the accounting identity holds in Prometheus too);
//! every DLQ record increments `dlq_records_total` by its first reason; alerts count by tier; the score
//! histogram gets every score. No label ever carries a patient identifier, not even a pseudonym.

use crate::core::engine::RecordReport;
use crate::core::features::NAMES;
use crate::core::reason::Outcome;
use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// All metrics, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    pub records: IntCounterVec,
    pub resources: IntCounterVec,
    pub dlq: IntCounterVec,
    pub alerts: IntCounterVec,
    pub withdrawn: IntCounter,
    pub suppressed: IntCounter,
    pub score: Histogram,
    pub event_to_alert: Histogram,
    pub processing: HistogramVec,
    pub lag: IntGaugeVec,
    pub since_last_event: GaugeVec,
    pub patients: IntGauge,
    pub state_bytes: IntGauge,
    pub restore_seconds: Histogram,
    pub lost_state: IntGaugeVec,
    pub missing_share: GaugeVec,
    pub model_info: IntGaugeVec,
    pub rebalances: IntCounter,
    pub commit_failures: IntCounter,
    pub ready: IntGauge,
    pub feature_seen: CounterVec,
    pub feature_missing: CounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("oncowatch")
}

macro_rules! reg {
    ($r:expr, $m:expr) => {{
        let m = $m.expect("metric definitions are static and valid");
        $r.register(Box::new(m.clone())).expect("metric names are unique");
        m
    }};
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let h = |name: &str, help: &str, buckets: Vec<f64>| HistogramOpts::new(name, help).namespace("oncowatch").buckets(buckets);
        Metrics {
            records: reg!(r, IntCounterVec::new(opts("records_total", "Records read, by source topic (or 'file')."), &["topic"])),
            resources: reg!(
                r,
                IntCounterVec::new(
                    opts("resources_total", "Resources by outcome (applied, ignored, rejected) and reason."),
                    &["outcome", "reason"]
                )
            ),
            dlq: reg!(r, IntCounterVec::new(opts("dlq_records_total", "Records sent to the DLQ, by first rejection reason."), &["reason"])),
            alerts: reg!(r, IntCounterVec::new(opts("alerts_total", "Alerts published, by tier."), &["tier"])),
            withdrawn: reg!(r, IntCounter::with_opts(opts("alerts_withdrawn_total", "Alerts re-published as entered-in-error."))),
            suppressed: reg!(
                r,
                IntCounter::with_opts(opts("alerts_suppressed_total", "Alerts not raised because the event was backfill."))
            ),
            score: reg!(
                r,
                Histogram::with_opts(h("score", "Calibrated probabilities scored.", (0..=20).map(|i| f64::from(i) * 0.05).collect()))
            ),
            event_to_alert: reg!(
                r,
                Histogram::with_opts(h(
                    "event_to_alert_seconds",
                    "Seconds from the record's Kafka timestamp to the alert's delivery.",
                    vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]
                ))
            ),
            processing: reg!(
                r,
                HistogramVec::new(
                    h(
                        "record_processing_seconds",
                        "Seconds to decode, apply and score one record.",
                        vec![1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5]
                    ),
                    &["stage"]
                )
            ),
            lag: reg!(
                r,
                IntGaugeVec::new(
                    opts("consumer_lag", "Consumer lag per input partition (librdkafka statistics)."),
                    &["topic", "partition"]
                )
            ),
            since_last_event: reg!(
                r,
                GaugeVec::new(opts("seconds_since_last_event", "Seconds since the last record of each input topic."), &["topic"])
            ),
            patients: reg!(r, IntGauge::with_opts(opts("patients_in_state", "Patients held in memory."))),
            state_bytes: reg!(r, IntGauge::with_opts(opts("state_bytes", "Encoded bytes of the patient states in memory."))),
            restore_seconds: reg!(
                r,
                Histogram::with_opts(h(
                    "restore_seconds",
                    "Seconds to restore one partition from the changelog.",
                    vec![0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]
                ))
            ),
            lost_state: reg!(
                r,
                IntGaugeVec::new(
                    opts("lost_state", "1 when a changelog partition lost records (log start above 0 without compaction)."),
                    &["partition"]
                )
            ),
            missing_share: reg!(r, GaugeVec::new(opts("feature_missing_share", "Share of scores with the feature missing."), &["feature"])),
            model_info: reg!(r, IntGaugeVec::new(opts("model_info", "The model in use (value 1)."), &["version", "schema"])),
            rebalances: reg!(r, IntCounter::with_opts(opts("rebalances_total", "Consumer group rebalances seen."))),
            commit_failures: reg!(r, IntCounter::with_opts(opts("commit_failures_total", "Offset commits that failed."))),
            ready: reg!(r, IntGauge::with_opts(opts("ready", "1 when every assigned partition is restored."))),
            feature_seen: CounterVec::new(Opts::new("feature_seen", "internal"), &["feature"]).expect("static"),
            feature_missing: CounterVec::new(Opts::new("feature_missing", "internal"), &["feature"]).expect("static"),
            registry: r,
        }
    }

    /// Counts the outcomes, alerts and scores of one processed record.
    pub fn record(&self, topic: &str, report: &RecordReport) {
        self.records.with_label_values(&[topic]).inc();
        for r in &report.resources {
            let (outcome, reason) = match &r.outcome {
                Outcome::Applied => ("applied", ""),
                Outcome::Ignored(x, _) => ("ignored", x.code()),
                Outcome::Rejected(x, _) => ("rejected", x.code()),
            };
            self.resources.with_label_values(&[outcome, reason]).inc();
        }
        for a in &report.alerts {
            if a.withdrawn {
                self.withdrawn.inc();
            } else {
                self.alerts.with_label_values(&[crate::core::alerts::policy::tier_name(a.tier)]).inc();
            }
        }
        self.suppressed.inc_by(report.suppressed);
        for s in &report.scores {
            self.score.observe(s.probability);
            self.features(s.missing_mask);
        }
    }

    /// Updates the missing share of each feature with one score's missing mask (bit i = feature i missing).
    pub fn features(&self, missing_mask: u64) {
        for (i, name) in NAMES.iter().enumerate() {
            self.feature_seen.with_label_values(&[name]).inc();
            if missing_mask & (1u64 << i) != 0 {
                self.feature_missing.with_label_values(&[name]).inc();
            }
            let seen = self.feature_seen.with_label_values(&[name]).get();
            let missing = self.feature_missing.with_label_values(&[name]).get();
            self.missing_share.with_label_values(&[name]).set(if seen > 0.0 { missing / seen } else { 0.0 });
        }
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}
