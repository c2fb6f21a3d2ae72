//! The edges around the core: input files, replay, generate, train, Kafka (run, repartition, feed, broker),
//! demo, HTTP.
//! Drivers do the IO; they hand bytes to [`crate::core::engine::Engine`] and write what it returns.

pub mod demo;
pub mod features_csv;
pub mod generate;
pub mod http;
pub mod input;
pub mod kafka;
pub mod plots;
pub mod progress;
pub mod replay;
pub mod train;
