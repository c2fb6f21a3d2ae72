//! Fuzz target: any bytes through the engine must not panic, and the accounting must balance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::{Engine, States};
use oncowatch::core::identity::{Pseudonymizer, DEVELOPMENT_PSEUDONYM_KEY};
use oncowatch::core::reason::Tally;
use oncowatch::core::vocabulary::Vocabulary;

fuzz_target!(|data: &[u8]| {
    let Ok(vocab) = Vocabulary::builtin() else { return };
    let engine = Engine::new(vocab, DecodeOptions::default(), Pseudonymizer::new(DEVELOPMENT_PSEUDONYM_KEY.as_bytes()));
    let mut states = States::new();
    let mut tally = Tally::default();
    for r in engine.process(&mut states, data, None, None).resources {
        tally.count(&r.outcome);
    }
    assert!(tally.balances() && tally.resources >= 1);
});
