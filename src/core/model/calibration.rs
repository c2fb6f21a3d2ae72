//! Calibration: raw scores to probabilities by isotonic regression (pool-adjacent-violators) fitted on the
//! calibration split, applied as a step function (linear between block centres would also be monotone;
//! steps keep probabilities equal to observed rates).

use serde::{Deserialize, Serialize};

/// A monotone step function: `probability(raw)` is the value of the last block whose lower edge is `<= raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    /// Lower edge (raw score) of each block, ascending.
    pub edges: Vec<f64>,
    /// Probability of each block, non-decreasing, in [0, 1].
    pub values: Vec<f64>,
}

impl Isotonic {
    /// Fits on (raw score, 0/1 label) pairs. Needs at least one pair.
    pub fn fit(pairs: &[(f64, f64)]) -> Option<Isotonic> {
        if pairs.is_empty() {
            return None;
        }
        let mut p: Vec<(f64, f64)> = pairs.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        // Blocks: (lower edge, sum of labels, count).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for (x, y) in p {
            blocks.push((x, y, 1.0));
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.1 / a.2 >= b.1 / b.2 {
                    blocks.pop();
                    blocks[n - 2] = (a.0, a.1 + b.1, a.2 + b.2);
                } else {
                    break;
                }
            }
        }
        Some(Isotonic { edges: blocks.iter().map(|b| b.0).collect(), values: blocks.iter().map(|b| (b.1 / b.2).clamp(0.0, 1.0)).collect() })
    }

    pub fn probability(&self, raw: f64) -> f64 {
        let i = self.edges.partition_point(|e| *e <= raw);
        let v = if i == 0 { self.values.first() } else { self.values.get(i - 1) };
        v.copied().unwrap_or(0.0)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.edges.len() != self.values.len() || self.edges.is_empty() {
            return Err("calibration: edges and values differ in length or are empty".into());
        }
        if self.edges.windows(2).any(|w| w[0] > w[1]) || self.values.windows(2).any(|w| w[0] > w[1]) {
            return Err("calibration: not monotone".into());
        }
        if self.values.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err("calibration: probability outside [0, 1]".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pav_pools_violations_and_is_monotone() {
        let c = Isotonic::fit(&[(0.1, 0.0), (0.2, 1.0), (0.3, 0.0), (0.4, 1.0), (0.5, 1.0)]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.probability(0.0), 0.0);
        assert_eq!(c.probability(0.25), 0.5);
        assert_eq!(c.probability(0.9), 1.0);
    }
}
