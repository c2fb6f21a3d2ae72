//! Typed configuration: `config/default.toml` (built in) overridden by an optional file and by
//! `ONCOWATCH__SECTION__KEY` environment variables. Unknown keys and invalid values fail at start, naming the
//! key; secrets are masked whenever the configuration is shown.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in defaults: every key, with a comment.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub input: InputConfig,
    pub privacy: PrivacyConfig,
    pub vocabulary: VocabularyConfig,
    pub log: LogConfig,
    pub model: ModelConfig,
    pub output: OutputConfig,
    pub run: RunSection,
    pub http: HttpConfig,
    pub kafka: crate::drivers::kafka::client::KafkaConfig,
    pub alerts: crate::core::alerts::policy::PolicyConfig,
    pub train: crate::drivers::train::TrainConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub max_record_bytes: usize,
    pub topics: Vec<String>,
    pub keyed_by_patient: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub alerts_topic: String,
    pub scores_topic: String,
    pub dlq_topic: String,
    pub state_topic: String,
    pub repartition_topic: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub group_id: String,
    pub delivery: crate::drivers::kafka::run::Delivery,
    pub transactional_id: String,
    pub flush_records: usize,
    pub flush_interval_ms: u64,
    pub broker_compacts: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    #[serde(serialize_with = "mask")]
    pub token: Secret,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    #[serde(serialize_with = "mask")]
    pub pseudonym_key: Secret,
}

impl fmt::Debug for PrivacyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivacyConfig").field("pseudonym_key", &self.pseudonym_key).finish()
    }
}

/// A secret string: shown as `****` by `Debug`, `Display` and serialisation.
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"****\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "****" })
    }
}

fn mask<S: serde::Serializer>(v: &Secret, s: S) -> Result<S::Ok, S::Error> {
    v.serialize(s)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VocabularyConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl Config {
    /// Loads defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("ONCOWATCH__")).collect();
        Self::load_with_env(file, env)
    }

    /// Loads defaults, then `file`, then the given `ONCOWATCH__…` variables (testable without the process
    /// environment).
    pub fn load_with_env(file: Option<&Path>, env: HashMap<String, String>) -> Result<Config, ConfigError> {
        use config::{Environment, File, FileFormat};
        let mut b = config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(p) = file {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::File { path: p.to_path_buf(), message: e.to_string() })?;
            b = b.add_source(File::from_str(&text, FileFormat::Toml));
        }
        let env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        b = b.add_source(Environment::with_prefix("ONCOWATCH").prefix_separator("__").separator("__").try_parsing(true).source(Some(env)));
        let c = b.build().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let cfg: Config = c.try_deserialize().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.input.max_record_bytes == 0 {
            return Err(ConfigError::Invalid("input.max_record_bytes: must be at least 1".into()));
        }
        Ok(())
    }

    /// The configuration as TOML with secrets masked (for `oncowatch config`).
    pub fn dump(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }

    /// The pseudonym key in force, and whether it is the development key.
    pub fn pseudonym_key(&self) -> (&str, bool) {
        if self.privacy.pseudonym_key.is_empty() {
            (crate::core::identity::DEVELOPMENT_PSEUDONYM_KEY, true)
        } else {
            let k = self.privacy.pseudonym_key.expose();
            (k, k == crate::core::identity::DEVELOPMENT_PSEUDONYM_KEY)
        }
    }

    /// The service settings of `run`.
    pub fn run_config(&self) -> crate::drivers::kafka::run::RunConfig {
        crate::drivers::kafka::run::RunConfig {
            kafka: self.kafka.clone(),
            input_topics: self.input.topics.clone(),
            keyed_by_patient: self.input.keyed_by_patient,
            alerts_topic: self.output.alerts_topic.clone(),
            scores_topic: self.output.scores_topic.clone(),
            dlq_topic: self.output.dlq_topic.clone(),
            state_topic: self.output.state_topic.clone(),
            repartition_topic: self.output.repartition_topic.clone(),
            group_id: self.run.group_id.clone(),
            delivery: self.run.delivery,
            transactional_id: self.run.transactional_id.clone(),
            flush_records: self.run.flush_records,
            flush_interval_ms: self.run.flush_interval_ms,
            broker_compacts: self.run.broker_compacts,
        }
    }

    /// The vocabulary in force.
    pub fn load_vocabulary(&self) -> Result<crate::core::vocabulary::Vocabulary, ConfigError> {
        use crate::core::vocabulary::Vocabulary;
        if self.vocabulary.path.as_os_str().is_empty() {
            return Vocabulary::builtin().map_err(|e| ConfigError::Invalid(e.to_string()));
        }
        let p = &self.vocabulary.path;
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError::File { path: p.clone(), message: e.to_string() })?;
        Vocabulary::from_toml(&text).map_err(|e| ConfigError::File { path: p.clone(), message: e.to_string() })
    }
}
