//! The engine: the one entry point from a record's bytes to outcomes, state changes, scores and alerts.
//! `replay`, `train` and `run` all call it; it does no IO and reads no clock (a record's arrival time, when
//! there is one, comes in as data).

use super::alerts::explain::{is_evidence, sentence, top_features};
use super::alerts::fhir::{risk_assessment, AlertContent};
use super::alerts::policy::{self, tier_name, PolicyConfig};
use super::alerts::{alert_id, Alert};
use super::decode::{decode_record, DecodeOptions, Decoded};
use super::event::{ClinicalEvent, Fact};
use super::features::compute;
use super::identity::{EventTime, PatientKey, Pseudonymizer};
use super::model::{Model, MODEL_NAME};
use super::reason::{Outcome, RejectReason};
use super::state::{res_hash, ApplyResult, PatientState};
use super::vocabulary::Vocabulary;
use std::collections::BTreeMap;

/// Per-patient states, keyed by canonical patient key (sorted: iteration order is deterministic).
pub type States = BTreeMap<PatientKey, PatientState>;

/// The outcome of one resource of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    pub entry: Option<String>,
    pub resource_type: Option<String>,
    pub outcome: Outcome,
}

/// One score (for the optional scores topic).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreLine {
    pub pseudonym: String,
    pub as_of: EventTime,
    pub probability: f64,
    pub tier: u8,
    /// Bit i set when feature i was missing (for the missing-share metric).
    pub missing_mask: u64,
}

impl ScoreLine {
    pub fn to_json(&self, model_version: &str) -> String {
        serde_json::json!({
            "pseudonym": self.pseudonym, "as_of": self.as_of.to_rfc3339(), "probability": self.probability,
            "tier": tier_name(self.tier), "model_version": model_version,
        })
        .to_string()
    }
}

/// What processing one record did.
#[derive(Debug, Clone, Default)]
pub struct RecordReport {
    pub resources: Vec<ResourceReport>,
    /// Patients whose state changed (sorted, unique).
    pub changed: Vec<PatientKey>,
    /// Alerts to publish (new ones and withdrawals), in the order they arose.
    pub alerts: Vec<Alert>,
    pub scores: Vec<ScoreLine>,
    /// Alerts the policy raised but backfill suppressed.
    pub suppressed: u64,
}

impl RecordReport {
    pub fn rejected(&self) -> impl Iterator<Item = &ResourceReport> {
        self.resources.iter().filter(|r| matches!(r.outcome, Outcome::Rejected(..)))
    }
}

/// The core, configured once.
#[derive(Debug)]
pub struct Engine {
    pub vocab: Vocabulary,
    pub decode: DecodeOptions,
    pub pseudonyms: Pseudonymizer,
    /// Without a model the engine keeps state but does not score.
    pub model: Option<Model>,
    pub policy: PolicyConfig,
}

impl Engine {
    pub fn new(vocab: Vocabulary, decode: DecodeOptions, pseudonyms: Pseudonymizer) -> Self {
        Engine { vocab, decode, pseudonyms, model: None, policy: PolicyConfig::default() }
    }

    pub fn with_model(mut self, model: Model, policy: PolicyConfig) -> Self {
        self.model = Some(model);
        self.policy = policy;
        self
    }

    /// Decodes one record and applies its events to `states`, scoring and alerting after each applied
    /// event. `arrival` is the record's arrival time (Kafka timestamp, or replay's `--arrival-time`), used
    /// only to suppress alerts for backfilled events.
    pub fn process(&self, states: &mut States, bytes: &[u8], record_key: Option<&PatientKey>, arrival: Option<EventTime>) -> RecordReport {
        let decoded = decode_record(bytes, &self.vocab, &self.decode, record_key);
        let mut report = RecordReport { resources: Vec::with_capacity(decoded.len()), ..RecordReport::default() };
        for d in decoded {
            let outcome = match d.decoded {
                Decoded::Ignored(r, m) => Outcome::Ignored(r, m),
                Decoded::Rejected(r, m) => Outcome::Rejected(r, m),
                Decoded::Event(ev) if record_key.is_some_and(|k| *k != ev.patient) => {
                    // A keyed record must be about its key's patient, or partitions would disagree on where a
                    // patient's state lives.
                    Outcome::Rejected(RejectReason::NoPatient, "the resource's patient differs from the record key".into())
                }
                Decoded::Event(ev) => self.apply_event(states, &ev, arrival, &mut report),
            };
            report.resources.push(ResourceReport { entry: d.entry, resource_type: d.resource_type, outcome });
        }
        report.changed.sort();
        report.changed.dedup();
        report
    }

    /// Applies one decoded event: state, then (with a model) rescoring and the alert policy.
    pub fn apply_event(&self, states: &mut States, ev: &ClinicalEvent, arrival: Option<EventTime>, report: &mut RecordReport) -> Outcome {
        let state = states.entry(ev.patient.clone()).or_insert_with(|| PatientState::new(ev.patient.clone()));
        match state.apply(ev) {
            ApplyResult::Applied => {
                report.changed.push(ev.patient.clone());
                self.after_apply(state, ev, arrival, report);
                Outcome::Applied
            }
            ApplyResult::Ignored(r) => Outcome::Ignored(r, format!("{} {}", ev.resource.kind.as_str(), r.code().replace('_', " "))),
        }
    }

    /// Rescoring and the alert policy after one applied event.
    fn after_apply(&self, state: &mut PatientState, ev: &ClinicalEvent, arrival: Option<EventTime>, report: &mut RecordReport) {
        let Some(model) = &self.model else { return };
        let pseudonym = self.pseudonyms.pseudonym(&state.key);
        if ev.fact == Fact::Retraction {
            self.withdraw(state, res_hash(&ev.resource), model, &pseudonym, report);
        }
        let Some(as_of) = state.latest else { return };
        if !state.eligible(as_of) {
            policy::end_episode(&mut state.policy);
            return;
        }
        let fv = compute(state, &self.vocab, as_of);
        let score = model.score(&fv);
        let decision = policy::step(&mut state.policy, &self.policy, as_of, score.probability);
        let missing_mask = fv.values.iter().enumerate().filter(|(_, v)| v.is_none()).fold(0u64, |m, (i, _)| m | (1u64 << (i % 64)));
        report.scores.push(ScoreLine {
            pseudonym: pseudonym.to_string(),
            as_of,
            probability: score.probability,
            tier: decision.tier,
            missing_mask,
        });
        let Some(tier) = decision.alert else { return };
        let top = top_features(&score.contributions, 3);
        // Basis: the resource just applied when it is evidence, then the latest evidence of each top feature.
        let mut basis_hashes: Vec<u32> = Vec::new();
        let trigger = res_hash(&ev.resource);
        let points = state.points();
        if points.iter().any(|p| p.res == trigger && top.iter().any(|f| is_evidence(*f, &p.kind, &self.vocab))) {
            basis_hashes.push(trigger);
        }
        for f in &top {
            if let Some(p) = points.iter().rev().find(|p| p.time <= as_of && is_evidence(*f, &p.kind, &self.vocab)) {
                if !basis_hashes.contains(&p.res) {
                    basis_hashes.push(p.res);
                }
            }
        }
        // Backfill: the policy still records the alert (so cooldowns and episodes evolve as they would
        // have), but it is not published, and so never withdrawn.
        let lag = arrival.map(|a| a.days_since(ev.time.unwrap_or(as_of)));
        let suppressed = lag.is_some_and(|l| l > self.policy.max_event_lag_days as f64);
        policy::record(&mut state.policy, tier, as_of, score.probability, basis_hashes.clone(), !suppressed);
        if suppressed {
            report.suppressed += 1;
            return;
        }
        let basis: Vec<String> = basis_hashes.iter().filter_map(|h| state.reference_of(*h).map(str::to_string)).collect();
        let reasons: Vec<String> = top.iter().map(|f| sentence(*f, &fv)).collect();
        let id = alert_id(&pseudonym, decision.episode, tier);
        let content = AlertContent {
            id: &id,
            withdrawn: false,
            patient: &state.key,
            time: as_of,
            model_name: MODEL_NAME,
            model_version: &model.version,
            probability: score.probability,
            horizon_days: model.horizon_days(),
            tier: tier_name(tier),
            basis: &basis,
            notes: &reasons,
        };
        let json = risk_assessment(&content).to_string();
        report.alerts.push(Alert { id, pseudonym, tier, probability: score.probability, time: as_of, withdrawn: false, reasons, json });
    }

    /// Withdraws the issued alerts whose evidence a retraction removed, when a re-score at the alert's time
    /// no longer reaches its tier: the alert is re-published with the same id, status entered-in-error.
    fn withdraw(
        &self,
        state: &mut PatientState,
        retracted: u32,
        model: &Model,
        pseudonym: &super::identity::Pseudonym,
        report: &mut RecordReport,
    ) {
        let candidates: Vec<usize> = state
            .policy
            .alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.withdrawn && a.published && a.basis.contains(&retracted))
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            let (tier, episode, time) = {
                let a = &state.policy.alerts[i];
                (a.tier, a.episode, a.time)
            };
            let fv = compute(state, &self.vocab, time);
            let p = model.score(&fv).probability;
            let threshold = self.policy.tiers[usize::from(tier.clamp(1, 3)) - 1];
            if p >= threshold {
                continue;
            }
            state.policy.alerts[i].withdrawn = true;
            let id = alert_id(pseudonym, episode, tier);
            let reasons = vec![format!(
                "withdrawn: the evidence was retracted and the risk re-scored at {} is {:.2}, under the {} tier",
                time.to_date(),
                p,
                tier_name(tier)
            )];
            let content = AlertContent {
                id: &id,
                withdrawn: true,
                patient: &state.key,
                time,
                model_name: MODEL_NAME,
                model_version: &model.version,
                probability: p,
                horizon_days: model.horizon_days(),
                tier: tier_name(tier),
                basis: &[],
                notes: &reasons,
            };
            let json = risk_assessment(&content).to_string();
            report.alerts.push(Alert { id, pseudonym: pseudonym.clone(), tier, probability: p, time, withdrawn: true, reasons, json });
        }
    }
}
