//! The pure core: decode, identity, vocabulary, state, features, model, alerts, and the engine that
//! strings them together. Architecture invariant: nothing under `core` does IO, reads a clock or a random
//! source, or knows of Kafka or files.

pub mod alerts;
pub mod decode;
pub mod engine;
pub mod event;
pub mod features;
pub mod identity;
pub mod model;
pub mod reason;
pub mod state;
pub mod vocabulary;
