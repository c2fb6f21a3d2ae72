//! The edges around the core: reading input, replay (and later train, generate, Kafka, HTTP).
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
