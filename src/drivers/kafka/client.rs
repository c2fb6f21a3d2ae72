//! The `[kafka]` configuration section and the librdkafka client configuration every Kafka client of
//! oncowatch starts from (`run`, `feed`, `broker` helpers, tests).
//!
//! Security is passed through to librdkafka: `security.protocol`, `sasl.mechanism` (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512) with username and password, and TLS files (CA, client certificate and key, key password).
//! `extra` holds raw librdkafka properties, applied last, so it can override anything set here (a client's
//! own defaults, e.g. `feed`'s `partitioner`, are only set when `extra` does not name them: see
//! [`set_default`]). Secrets are [`Secret`]s: masked by `Debug`, serialisation and [`describe`].

use crate::config::Secret;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `security.protocol` of librdkafka.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
    fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
    fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism` of librdkafka (empty: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum SaslMechanism {
    #[default]
    #[serde(rename = "")]
    None,
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka value (`""` for none).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::None => "",
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The `[kafka]` section: where the brokers are and how to authenticate.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// `client.id`.
    pub client_id: String,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: SaslMechanism,
    pub sasl_username: String,
    pub sasl_password: Secret,
    /// PEM file of the CA certificate(s) that sign the brokers' certificates (empty: system store).
    pub ssl_ca_location: String,
    /// PEM file of the client certificate (mutual TLS).
    pub ssl_certificate_location: String,
    /// PEM file of the client private key (mutual TLS).
    pub ssl_key_location: String,
    pub ssl_key_password: Secret,
    /// Raw librdkafka properties, applied last (they win over everything above). Values of properties
    /// whose name says password or secret are masked when shown.
    #[serde(serialize_with = "mask_extra")]
    pub extra: BTreeMap<String, String>,
}

fn mask_extra<S: serde::Serializer>(m: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        let shown = if is_secret_property(k) && !v.is_empty() { "****" } else { v.as_str() };
        out.serialize_entry(k, shown)?;
    }
    out.end()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            client_id: "oncowatch".into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: SaslMechanism::None,
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            ssl_ca_location: String::new(),
            ssl_certificate_location: String::new(),
            ssl_key_location: String::new(),
            ssl_key_password: Secret::default(),
            extra: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The defaults with other brokers (tests, `feed --brokers`, the embedded broker).
    pub fn with_brokers(brokers: impl Into<String>) -> Self {
        KafkaConfig { brokers: brokers.into(), ..KafkaConfig::default() }
    }

    /// Checks what librdkafka would only report at the first connection, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers: empty".into());
        }
        let sasl = self.security_protocol.uses_sasl();
        if sasl && self.sasl_mechanism == SaslMechanism::None {
            return Err(format!("kafka.sasl_mechanism: required with security_protocol = {:?}", self.security_protocol.as_str()));
        }
        if !sasl && self.sasl_mechanism != SaslMechanism::None {
            return Err(format!(
                "kafka.sasl_mechanism: {:?} needs security_protocol sasl_plaintext or sasl_ssl",
                self.sasl_mechanism.as_str()
            ));
        }
        if sasl && self.sasl_username.is_empty() {
            return Err("kafka.sasl_username: required with SASL".into());
        }
        if !self.security_protocol.uses_tls() {
            for (key, v) in [
                ("ssl_ca_location", &self.ssl_ca_location),
                ("ssl_certificate_location", &self.ssl_certificate_location),
                ("ssl_key_location", &self.ssl_key_location),
            ] {
                if !v.is_empty() {
                    return Err(format!("kafka.{key}: set, but security_protocol {:?} does not use TLS", self.security_protocol.as_str()));
                }
            }
        }
        if self.ssl_certificate_location.is_empty() != self.ssl_key_location.is_empty() {
            return Err("kafka.ssl_certificate_location and kafka.ssl_key_location: set both or neither".into());
        }
        for k in self.extra.keys() {
            if k.trim().is_empty() {
                return Err("kafka.extra: an empty property name".into());
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(self))
    }
}

/// Property names whose values are secrets (masked by [`describe`] also when they come through `extra`).
fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password") || n.contains("secret") || n.ends_with(".pem") || n == "sasl.oauthbearer.config" || n == "ssl.key.pem"
}

/// The librdkafka client configuration of `k`: `bootstrap.servers`, `client.id`, security, then `extra`.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", k.brokers.trim());
    c.set("client.id", &k.client_id);
    c.set("security.protocol", k.security_protocol.as_str());
    if k.security_protocol.uses_sasl() {
        if k.sasl_mechanism != SaslMechanism::None {
            c.set("sasl.mechanism", k.sasl_mechanism.as_str());
        }
        c.set("sasl.username", &k.sasl_username);
        c.set("sasl.password", k.sasl_password.expose());
    }
    if k.security_protocol.uses_tls() {
        for (name, v) in [
            ("ssl.ca.location", &k.ssl_ca_location),
            ("ssl.certificate.location", &k.ssl_certificate_location),
            ("ssl.key.location", &k.ssl_key_location),
        ] {
            if !v.is_empty() {
                c.set(name, v);
            }
        }
        if !k.ssl_key_password.is_empty() {
            c.set("ssl.key.password", k.ssl_key_password.expose());
        }
    }
    for (name, v) in &k.extra {
        c.set(name.trim(), v);
    }
    c
}

/// Sets `name` on `c` unless the user's `kafka.extra` names it (a client's default that configuration may
/// override).
pub fn set_default(c: &mut ClientConfig, k: &KafkaConfig, name: &str, value: &str) {
    if !k.extra.contains_key(name) {
        c.set(name, value);
    }
}

/// One line for logs: brokers, client id, security, and `extra`, with every secret masked.
pub fn describe(k: &KafkaConfig) -> String {
    let mask = |s: &Secret| if s.is_empty() { "" } else { "****" };
    let mut out = format!("brokers={} client_id={} security_protocol={}", k.brokers, k.client_id, k.security_protocol.as_str());
    if k.security_protocol.uses_sasl() {
        let _ = write!(
            out,
            " sasl_mechanism={} sasl_username={} sasl_password={}",
            k.sasl_mechanism.as_str(),
            k.sasl_username,
            mask(&k.sasl_password)
        );
    }
    if k.security_protocol.uses_tls() {
        let _ = write!(
            out,
            " ssl_ca_location={} ssl_certificate_location={} ssl_key_location={} ssl_key_password={}",
            k.ssl_ca_location,
            k.ssl_certificate_location,
            k.ssl_key_location,
            mask(&k.ssl_key_password)
        );
    }
    for (name, v) in &k.extra {
        let shown = if is_secret_property(name) && !v.is_empty() { "****" } else { v.as_str() };
        let _ = write!(out, " {name}={shown}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> KafkaConfig {
        match toml::from_str(s) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_are_plaintext_loopback() {
        let k = parse("");
        assert_eq!(k, KafkaConfig::default());
        assert!(k.validate().is_ok());
        let c = client_config(&k);
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(c.get("client.id"), Some("oncowatch"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("sasl.password"), None);
    }

    #[test]
    fn sasl_ssl_and_extra_are_passed_through_and_masked() {
        let k = parse(
            r#"
            brokers = "k1:9093,k2:9093"
            security_protocol = "sasl_ssl"
            sasl_mechanism = "SCRAM-SHA-512"
            sasl_username = "svc"
            sasl_password = "hunter2"
            ssl_ca_location = "/etc/ca.pem"
            ssl_key_password = "keypw"
            [extra]
            "linger.ms" = "20"
            "sasl.oauthbearer.client.secret" = "s3"
            "#,
        );
        assert!(k.validate().is_ok(), "{:?}", k.validate());
        let c = client_config(&k);
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("hunter2"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(c.get("ssl.key.password"), Some("keypw"));
        assert_eq!(c.get("linger.ms"), Some("20"));
        let d = describe(&k);
        assert!(!d.contains("hunter2") && !d.contains("keypw") && !d.contains("s3"));
        assert!(d.contains("sasl_password=****") && d.contains("linger.ms=20"));
        assert!(!format!("{k:?}").contains("hunter2"));
        let dump = toml::to_string(&k).unwrap_or_default();
        assert!(dump.contains("linger.ms") && !dump.contains("hunter2") && !dump.contains("s3"));
    }

    #[test]
    fn invalid_combinations_name_the_key() {
        let k = parse("security_protocol = \"sasl_plaintext\"\nsasl_username = \"u\"");
        assert!(k.validate().unwrap_err().contains("kafka.sasl_mechanism"));
        let k = parse("sasl_mechanism = \"PLAIN\"");
        assert!(k.validate().unwrap_err().contains("kafka.sasl_mechanism"));
        assert!(toml::from_str::<KafkaConfig>("sasl_mechanism = \"GSSAPI\"").is_err());
        assert!(toml::from_str::<KafkaConfig>("bogus = 1").is_err());
    }

    #[test]
    fn extra_wins_and_set_default_respects_it() {
        let mut k = KafkaConfig::with_brokers("b:1");
        k.extra.insert("client.id".into(), "other".into());
        k.extra.insert("partitioner".into(), "random".into());
        let mut c = client_config(&k);
        assert_eq!(c.get("client.id"), Some("other"));
        set_default(&mut c, &k, "partitioner", "murmur2_random");
        set_default(&mut c, &k, "linger.ms", "5");
        assert_eq!(c.get("partitioner"), Some("random"));
        assert_eq!(c.get("linger.ms"), Some("5"));
    }
}
