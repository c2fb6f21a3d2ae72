//! oncowatch: early warning of metastasis from a hospital's FHIR R4 event stream.
//!
//! It reads Observation, Condition, ImagingStudy and Patient resources (alone or in Bundles), keeps a small
//! state per patient, and scores each eligible patient's risk after every relevant event.
//!
//! # Layout
//!
//! | module | its one job |
//! |---|---|
//! | [`core::decode`] | bytes of one record to `ClinicalEvent`s, with an outcome for every resource |
//! | [`core::identity`] | `PatientKey`, `Pseudonym`, `EventTime`, `ResourceId`, `ResourceVersion`, reference parsing |
//! | [`core::vocabulary`] | the code sets of `config/vocabulary.toml` and their lookups |
//! | [`core::event`] | `ClinicalEvent` and `Fact`: what a resource says, in the core's terms |
//! | [`core::reason`] | stable reason codes, `Outcome`, the `Tally` that keeps the accounting identity |
//! | [`core::state`] | `PatientState`: apply, replace, retract; bounded; binary encoding |
//! | [`core::features`] | the `oncowatch.features` schema and its computation as of an event time |
//! | [`core::model`] | compiled trees, isotonic calibration, contributions, the model file |
//! | [`core::alerts`] | the alert policy, explanations, the RiskAssessment builder |
//! | [`core::engine`] | `Engine::process(record)`: the one entry point every driver calls |
//! | [`config`] | typed configuration, validation, secret masking |
//! | [`metrics`] | the one metric vocabulary every driver uses |
//! | [`drivers`] | the edges: input files, `replay`, `generate`, `train` (report, plots), `kafka` (`run`, repartition, client, embedded broker, feed), `demo`, HTTP |
//! | [`logging`] | tracing to stderr, pretty or JSON |
//!
//! The typed FHIR models live in the workspace member `oncowatch-fhir` (folder `fhir-decode/`), behind plain
//! functions, because their generated serde code is slow to compile.
//!
//! API boundary: `core` knows nothing of Kafka, files or clocks; drivers hand it bytes (and, for backfill
//! suppression, an arrival time as data) and publish what it returns.
//!
//! # Invariants
//!
//! - The core (`core::*`) does no IO and reads no clock or random source: the same records in the same
//!   per-patient order give byte-identical output.
//! - Every resource gets exactly one outcome: applied, ignored with a reason, or rejected with a reason;
//!   `resources = applied + Σ ignored + Σ rejected`.
//! - `replay` and `run` call the same `Engine`.
//! - Reason codes, summary keys and metric names are stable API: add, never rename.
//! - No patient identifier in clear leaves through logs: only the keyed pseudonym.

pub mod config;
pub mod core;
pub mod drivers;
pub mod logging;
pub mod metrics;
