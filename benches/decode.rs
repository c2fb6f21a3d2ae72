//! Decode benchmark over the Synthea sample of the shared corpus: resources/s of oncowatch's decode
//! (peek, Bundle split, typed decode of the types it reads, vocabulary, units) side by side with plain
//! `serde_json::Value` parsing of the same bytes, measured in the same run, and their ratio.
//!
//! Run: `cargo bench --bench decode` (release build). Corpus: `ONCOWATCH_CORPUS` or ../shared/fhir-corpus.

use oncowatch::core::decode::{decode_record, DecodeOptions};
use oncowatch::core::vocabulary::Vocabulary;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let corpus = std::env::var_os("ONCOWATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fhir-corpus"));
    let dir = corpus.join("synthea-r4-sample");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let records: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let bytes: usize = records.iter().map(Vec::len).sum();
    let vocab = Vocabulary::builtin().expect("vocabulary");
    let opts = DecodeOptions::default();
    let resources: usize = records.iter().map(|r| decode_record(r, &vocab, &opts, None).len()).sum();
    println!("decode bench: {} records, {} resources, {:.1} MiB (Synthea sample)", records.len(), resources, bytes as f64 / 1048576.0);

    let rounds = 5;
    let mut best_value = Duration::MAX;
    let mut best_decode = Duration::MAX;
    for _ in 0..rounds {
        // Interleave the two so machine noise hits both alike.
        let t = Instant::now();
        for r in &records {
            let v: serde_json::Value = serde_json::from_slice(r).expect("json");
            black_box(v);
        }
        best_value = best_value.min(t.elapsed());
        let t = Instant::now();
        for r in &records {
            black_box(decode_record(r, &vocab, &opts, None));
        }
        best_decode = best_decode.min(t.elapsed());
    }
    let rate = |d: Duration| resources as f64 / d.as_secs_f64();
    let (rv, rd) = (rate(best_value), rate(best_decode));
    println!("{:<40} {:>12} {:>10}", "pass (best of 5)", "resources/s", "MiB/s");
    println!("{:<40} {:>12.0} {:>10.1}", "serde_json::Value parse (baseline)", rv, bytes as f64 / 1048576.0 / best_value.as_secs_f64());
    println!("{:<40} {:>12.0} {:>10.1}", "oncowatch decode_record", rd, bytes as f64 / 1048576.0 / best_decode.as_secs_f64());
    println!("ratio decode / Value parse: {:.2} (goal >= 0.50)", rd / rv);
}
