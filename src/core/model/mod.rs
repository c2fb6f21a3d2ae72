//! The model: compiled trees, imputation, calibration and per-feature contributions, and the versioned
//! model file they are saved in.
//!
//! The model file is JSON: format version, feature schema (name, version, names), horizon, imputation
//! (training medians), the compiled trees, the isotonic calibration and a training summary. Its model
//! version is a hash of the file's bytes. Loading refuses a file whose schema differs from the code's, or
//! that is corrupt or truncated, with an error that says which.

pub mod calibration;
pub mod forest;

use super::features::{FeatureVector, NAMES, N_FEATURES, SCHEMA_NAME, SCHEMA_VERSION};
use calibration::Isotonic;
use forest::Forest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT_VERSION: u32 = 1;
pub const MODEL_NAME: &str = "oncowatch-metastasis-gbt";

/// The feature schema a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaRef {
    pub name: String,
    pub version: u32,
    pub features: Vec<String>,
}

impl SchemaRef {
    pub fn current() -> Self {
        SchemaRef { name: SCHEMA_NAME.into(), version: SCHEMA_VERSION, features: NAMES.iter().map(|s| s.to_string()).collect() }
    }
}

/// The model file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub format_version: u32,
    pub name: String,
    pub schema: SchemaRef,
    /// Prediction horizon in days (metastasis within this many days of the score's event time).
    pub horizon_days: u32,
    /// Value used for a missing feature (the training median), per feature.
    pub imputation: Vec<f64>,
    pub forest: Forest,
    pub calibration: Isotonic,
    /// Free-form training summary (data, split, parameters, metrics).
    pub training: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file is not valid JSON or is truncated: {0}")]
    Corrupt(String),
    #[error("model file format version {0} is not readable by this build (it reads {FORMAT_VERSION})")]
    Format(u32),
    #[error("model was trained on feature schema {found}, this build computes {expected}: retrain the model")]
    Schema { found: String, expected: String },
    #[error("model file is inconsistent: {0}")]
    Invalid(String),
}

/// A loaded, validated model.
#[derive(Debug, Clone)]
pub struct Model {
    pub file: ModelFile,
    /// `sha256:` and the first 16 hex characters of the SHA-256 of the file's bytes.
    pub version: String,
}

/// One score with its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub raw: f64,
    pub probability: f64,
    /// Per feature, in schema order; sums to `raw - base_value`.
    pub contributions: Vec<f64>,
    /// The imputed row that was scored.
    pub row: Vec<f64>,
}

/// The version string of model file bytes.
pub fn version_of(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!("sha256:{}", hex::encode(&h[..8]))
}

impl Model {
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        let fv =
            v.get("format_version").and_then(serde_json::Value::as_u64).ok_or_else(|| ModelError::Corrupt("no format_version".into()))?;
        if fv != u64::from(FORMAT_VERSION) {
            return Err(ModelError::Format(u32::try_from(fv).unwrap_or(u32::MAX)));
        }
        let file: ModelFile = serde_json::from_value(v).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        let current = SchemaRef::current();
        if file.schema != current {
            return Err(ModelError::Schema {
                found: format!("{} v{} ({} features)", file.schema.name, file.schema.version, file.schema.features.len()),
                expected: format!("{} v{} ({} features)", current.name, current.version, current.features.len()),
            });
        }
        if file.imputation.len() != N_FEATURES || file.imputation.iter().any(|x| !x.is_finite()) {
            return Err(ModelError::Invalid("imputation must hold one finite value per feature".into()));
        }
        if file.forest.n_features != N_FEATURES {
            return Err(ModelError::Invalid("trees are for another number of features".into()));
        }
        file.forest.validate().map_err(|e| ModelError::Invalid(e.to_string()))?;
        file.calibration.validate().map_err(ModelError::Invalid)?;
        Ok(Model { version: version_of(bytes), file })
    }

    pub fn load(path: &std::path::Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Corrupt(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// The imputed row of a feature vector.
    pub fn row(&self, fv: &FeatureVector) -> Vec<f64> {
        fv.values.iter().zip(&self.file.imputation).map(|(v, m)| v.unwrap_or(*m)).collect()
    }

    pub fn score(&self, fv: &FeatureVector) -> Score {
        let row = self.row(fv);
        let (raw, contributions) = self.file.forest.explain(&row);
        Score { raw, probability: self.file.calibration.probability(raw), contributions, row }
    }

    pub fn horizon_days(&self) -> u32 {
        self.file.horizon_days
    }
}
