//! The alert policy, in event time: tiers with hysteresis, one alert per tier and episode (a rise to a
//! higher tier alerts at once), a cooldown across episodes, episodes that end after 30 days under the
//! lowest tier or when the patient stops being eligible.

use crate::core::identity::EventTime;
use crate::core::state::{IssuedAlert, PolicyState};
use serde::{Deserialize, Serialize};

/// Tier names, index = tier number - 1.
pub const TIER_NAMES: [&str; 3] = ["watch", "high", "urgent"];

pub fn tier_name(tier: u8) -> &'static str {
    TIER_NAMES.get(usize::from(tier).wrapping_sub(1)).copied().unwrap_or("none")
}

/// Policy parameters (config section `alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Thresholds of watch, high, urgent on the calibrated probability.
    pub tiers: [f64; 3],
    /// A tier is left when the probability falls this far below its threshold.
    pub hysteresis: f64,
    /// After an alert, no alert at the same or a lower tier for this many days (event time).
    pub cooldown_days: i64,
    /// An episode ends when the patient stays under the lowest tier this many days.
    pub episode_end_days: i64,
    /// Events whose time lags their arrival by more than this update state but raise no alert.
    pub max_event_lag_days: i64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { tiers: [0.20, 0.40, 0.60], hysteresis: 0.05, cooldown_days: 30, episode_end_days: 30, max_event_lag_days: 30 }
    }
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<(), String> {
        let t = self.tiers;
        if !(0.0 < t[0] && t[0] < t[1] && t[1] < t[2] && t[2] <= 1.0) {
            return Err("alerts.tiers: must be three increasing probabilities in (0, 1]".into());
        }
        if !(0.0..t[0]).contains(&self.hysteresis) {
            return Err("alerts.hysteresis: must be at least 0 and below the lowest tier".into());
        }
        if self.cooldown_days < 0 || self.episode_end_days < 0 || self.max_event_lag_days < 0 {
            return Err("alerts: day counts must not be negative".into());
        }
        Ok(())
    }

    fn level(&self, p: f64) -> u8 {
        self.tiers.iter().filter(|t| p >= **t).count() as u8
    }
}

/// What one step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The tier to alert at, if any.
    pub alert: Option<u8>,
    pub episode: u32,
    pub tier: u8,
}

/// One policy step for an eligible patient scored `p` as of `t`.
pub fn step(s: &mut PolicyState, cfg: &PolicyConfig, t: EventTime, p: f64) -> Decision {
    let prev = s.tier;
    let up = cfg.level(p);
    // Hysteresis: stay in the current tier until p falls `hysteresis` below its threshold.
    let kept = (1..=prev).rev().find(|k| p >= cfg.tiers[usize::from(*k) - 1] - cfg.hysteresis).unwrap_or(0);
    let tier = up.max(kept);
    s.tier = tier;
    if tier > 0 {
        s.last_above = Some(t);
        if !s.in_episode {
            s.in_episode = true;
            s.episode += 1;
        }
    } else if s.in_episode && s.last_above.is_some_and(|a| t.days_since(a) >= cfg.episode_end_days as f64) {
        s.in_episode = false;
    }
    let mut alert = None;
    if tier > prev && tier > 0 {
        let highest_this_episode = s.alerts.iter().filter(|a| a.episode == s.episode && !a.withdrawn).map(|a| a.tier).max().unwrap_or(0);
        let cooling = s.alerts.iter().any(|a| a.tier >= tier && t.days_since(a.time) < cfg.cooldown_days as f64 && !a.withdrawn);
        let alerted_this_tier = s.alerts.iter().any(|a| a.episode == s.episode && a.tier == tier);
        if tier > highest_this_episode && !cooling && !alerted_this_tier {
            alert = Some(tier);
        }
    }
    Decision { alert, episode: s.episode, tier }
}

/// Records an issued alert (kept for cooldowns and withdrawal; only the latest few are kept).
pub fn record(s: &mut PolicyState, tier: u8, t: EventTime, probability: f64, basis: Vec<u32>, published: bool) {
    s.alerts.push(IssuedAlert { tier, episode: s.episode, time: t, withdrawn: false, published, probability: probability as f32, basis });
    if s.alerts.len() > 6 {
        s.alerts.remove(0);
    }
}

/// The patient stopped being eligible (metastasis confirmed, deceased, primary retracted): the episode ends.
pub fn end_episode(s: &mut PolicyState) {
    s.in_episode = false;
    s.tier = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64) -> EventTime {
        EventTime::from_ymd(2022, 1, 1).plus_days(d)
    }

    fn run(s: &mut PolicyState, cfg: &PolicyConfig, d: i64, p: f64) -> Option<u8> {
        let dec = step(s, cfg, day(d), p);
        if let Some(t) = dec.alert {
            record(s, t, day(d), p, vec![], true);
        }
        dec.alert
    }

    #[test]
    fn one_alert_at_the_highest_tier_crossed_then_hysteresis_and_rises() {
        let cfg = PolicyConfig::default();
        let mut s = PolicyState::default();
        assert_eq!(run(&mut s, &cfg, 0, 0.10), None);
        assert_eq!(run(&mut s, &cfg, 1, 0.45), Some(2), "jumping past watch alerts once, at high");
        assert_eq!(s.tier, 2);
        assert_eq!(run(&mut s, &cfg, 2, 0.37), None);
        assert_eq!(s.tier, 2, "0.37 is within the 0.05 hysteresis of high");
        assert_eq!(run(&mut s, &cfg, 3, 0.33), None);
        assert_eq!(s.tier, 1, "left high, kept watch");
        assert_eq!(run(&mut s, &cfg, 4, 0.41), None, "high again in the same episode: already alerted");
        assert_eq!(run(&mut s, &cfg, 5, 0.65), Some(3), "a rise to a higher tier alerts at once");
        assert_eq!(s.episode, 1);
    }

    #[test]
    fn episodes_end_after_30_days_under_and_cooldown_spans_them() {
        let cfg = PolicyConfig::default();
        let mut s = PolicyState::default();
        assert_eq!(run(&mut s, &cfg, 0, 0.25), Some(1));
        assert_eq!(run(&mut s, &cfg, 10, 0.05), None);
        assert_eq!(run(&mut s, &cfg, 41, 0.05), None);
        assert!(!s.in_episode, "31 days under the lowest tier ends the episode");
        assert_eq!(run(&mut s, &cfg, 42, 0.05), None);
        // A new episode starts, but the last watch alert was 45 days ago: outside the cooldown, so it alerts.
        assert_eq!(run(&mut s, &cfg, 45, 0.22), Some(1));
        assert_eq!(s.episode, 2);
        let mut t = PolicyState::default();
        assert_eq!(run(&mut t, &cfg, 0, 0.25), Some(1));
        assert_eq!(run(&mut t, &cfg, 1, 0.05), None);
        t.in_episode = false; // as if the episode had ended
        assert_eq!(run(&mut t, &cfg, 20, 0.25), None, "within 30 days of a watch alert: cooldown");
    }
}
