//! Alerts: the policy (tiers, hysteresis, cooldown, episodes), explanations, and the RiskAssessment
//! builder. An alert id is a hash of (pseudonym, episode, tier): deterministic and independent of the
//! model version, so a re-processed event re-publishes the same id.

pub mod explain;
pub mod fhir;
pub mod policy;

use crate::core::identity::{EventTime, Pseudonym};
use sha2::{Digest, Sha256};

/// An alert ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub pseudonym: Pseudonym,
    pub tier: u8,
    pub probability: f64,
    pub time: EventTime,
    pub withdrawn: bool,
    /// Plain-words reasons (the RiskAssessment's notes).
    pub reasons: Vec<String>,
    /// The RiskAssessment JSON (one line, deterministic bytes).
    pub json: String,
}

/// Alert id: the first 16 bytes of SHA-256 over (pseudonym, episode, tier), as 32 hex characters.
pub fn alert_id(pseudonym: &Pseudonym, episode: u32, tier: u8) -> String {
    let mut h = Sha256::new();
    h.update(pseudonym.as_str().as_bytes());
    h.update(episode.to_le_bytes());
    h.update([tier]);
    hex::encode(&h.finalize()[..16])
}
