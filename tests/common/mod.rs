//! Shared test helpers: where the shared corpus is, and an engine with the built-in vocabulary.
#![allow(dead_code)]

pub mod tansu;

use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::Engine;
use oncowatch::core::identity::{Pseudonymizer, DEVELOPMENT_PSEUDONYM_KEY};
use oncowatch::core::vocabulary::Vocabulary;
use std::path::PathBuf;

/// The shared FHIR corpus: `ONCOWATCH_CORPUS`, else `../shared/fhir-corpus` beside the checkout.
pub fn corpus() -> PathBuf {
    let p = std::env::var_os("ONCOWATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fhir-corpus"));
    assert!(p.is_dir(), "shared FHIR corpus not found at {} (set ONCOWATCH_CORPUS)", p.display());
    p.canonicalize().expect("corpus path")
}

pub fn engine() -> Engine {
    Engine::new(
        Vocabulary::builtin().expect("built-in vocabulary"),
        DecodeOptions::default(),
        Pseudonymizer::new(DEVELOPMENT_PSEUDONYM_KEY.as_bytes()),
    )
}
