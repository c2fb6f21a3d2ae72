//! Kafka: client configuration ([`client`]), the embedded broker ([`broker`]), `feed` ([`feed`]), and the
//! stream service ([`run`], [`repartition`], [`service`]).

pub mod broker;
pub mod client;
pub mod feed;
pub mod repartition;
pub mod run;
pub mod service;
