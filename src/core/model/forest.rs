//! Compiled trees: smartcore's fitted gradient-boosted trees as flat arrays, with the same raw score as
//! smartcore's own `predict` bit for bit (same comparisons, same summation order: start at the base score
//! and add `learning_rate * leaf` tree by tree) and per-feature path attributions.
//!
//! Attribution: walking a tree from its root, each split moves the node value from the parent's to the
//! child's; that step, times the learning rate, is credited to the split feature. The contributions of a
//! row therefore sum to `raw - base_value`, where `base_value = base_score + learning_rate * Σ root values`.

use serde::{Deserialize, Serialize};

/// Marks a leaf in `feature`.
pub const LEAF: u32 = u32::MAX;

/// One node: a split (`x[feature] <= threshold` goes left) or a leaf (`feature == LEAF`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    pub threshold: f64,
    pub left: u32,
    pub right: u32,
    pub value: f64,
}

/// A forest of compiled trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub base_score: f64,
    pub learning_rate: f64,
    pub n_features: usize,
    /// Index of each tree's root in `nodes`.
    pub roots: Vec<u32>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForestError {
    #[error("model trees: {0}")]
    Shape(String),
}

impl Forest {
    /// Compiles smartcore's serde JSON of a fitted `XGRegressor` (fields `parameters`, `regressors`; a node
    /// has `left`, `right`, `value`, `threshold`, `split_feature_idx`).
    pub fn from_smartcore_json(v: &serde_json::Value, n_features: usize) -> Result<Forest, ForestError> {
        let err = |m: &str| ForestError::Shape(m.to_string());
        let params = v.get("parameters").ok_or_else(|| err("no `parameters`"))?;
        let num = |k: &str| {
            params.get(k).and_then(serde_json::Value::as_f64).ok_or_else(|| ForestError::Shape(format!("parameters.{k} missing")))
        };
        let mut f = Forest {
            base_score: num("base_score")?,
            learning_rate: num("learning_rate")?,
            n_features,
            roots: Vec::new(),
            nodes: Vec::new(),
        };
        let trees = v.get("regressors").and_then(serde_json::Value::as_array).ok_or_else(|| err("no `regressors`"))?;
        for t in trees {
            let root = f.push(t, 0)?;
            f.roots.push(root);
        }
        f.validate()?;
        Ok(f)
    }

    fn push(&mut self, n: &serde_json::Value, depth: usize) -> Result<u32, ForestError> {
        if depth > 64 {
            return Err(ForestError::Shape("tree deeper than 64".into()));
        }
        let value = n.get("value").and_then(serde_json::Value::as_f64).ok_or_else(|| ForestError::Shape("node without value".into()))?;
        let idx = u32::try_from(self.nodes.len()).map_err(|_| ForestError::Shape("too many nodes".into()))?;
        let (left, right) = (n.get("left").filter(|x| !x.is_null()), n.get("right").filter(|x| !x.is_null()));
        self.nodes.push(Node { feature: LEAF, threshold: 0.0, left: 0, right: 0, value });
        if let (Some(l), Some(r)) = (left, right) {
            let feature = n
                .get("split_feature_idx")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| ForestError::Shape("split without feature".into()))?;
            let threshold = n
                .get("threshold")
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| ForestError::Shape("split without threshold".into()))?;
            let li = self.push(l, depth + 1)?;
            let ri = self.push(r, depth + 1)?;
            let feature = u32::try_from(feature).map_err(|_| ForestError::Shape("feature index too large".into()))?;
            self.nodes[idx as usize] = Node { feature, threshold, left: li, right: ri, value };
        }
        Ok(idx)
    }

    /// Checks every index, so scoring can index without bounds failures on a loaded file.
    pub fn validate(&self) -> Result<(), ForestError> {
        let n = self.nodes.len() as u32;
        if !self.base_score.is_finite() || !self.learning_rate.is_finite() {
            return Err(ForestError::Shape("base score or learning rate not finite".into()));
        }
        for r in &self.roots {
            if *r >= n {
                return Err(ForestError::Shape("root index out of range".into()));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.value.is_finite() {
                return Err(ForestError::Shape(format!("node {i}: value not finite")));
            }
            if node.feature != LEAF {
                // Children come after their parent: this also rules out cycles.
                if node.left >= n || node.right >= n || node.left as usize <= i || node.right as usize <= i {
                    return Err(ForestError::Shape(format!("node {i}: child index out of range")));
                }
                if node.feature as usize >= self.n_features {
                    return Err(ForestError::Shape(format!("node {i}: feature {} out of range", node.feature)));
                }
            }
        }
        Ok(())
    }

    fn leaf(&self, root: u32, x: &[f64]) -> &Node {
        let mut n = &self.nodes[root as usize];
        while n.feature != LEAF {
            n = &self.nodes[if x[n.feature as usize] <= n.threshold { n.left } else { n.right } as usize];
        }
        n
    }

    /// Raw score of one imputed row (`x.len() == n_features`), equal to smartcore's `predict`.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut acc = self.base_score;
        for r in &self.roots {
            acc += self.learning_rate * self.leaf(*r, x).value;
        }
        acc
    }

    /// The score before any split: base score plus the learning rate times each tree's root value.
    pub fn base_value(&self) -> f64 {
        let mut acc = self.base_score;
        for r in &self.roots {
            acc += self.learning_rate * self.nodes[*r as usize].value;
        }
        acc
    }

    /// Raw score and per-feature contributions (summing to `raw - base_value()`, up to rounding).
    pub fn explain(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut contrib = vec![0.0; self.n_features];
        for r in &self.roots {
            let mut n = &self.nodes[*r as usize];
            while n.feature != LEAF {
                let child = &self.nodes[if x[n.feature as usize] <= n.threshold { n.left } else { n.right } as usize];
                contrib[n.feature as usize] += self.learning_rate * (child.value - n.value);
                n = child;
            }
        }
        (self.predict(x), contrib)
    }
}
