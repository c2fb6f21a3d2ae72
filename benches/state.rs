//! State benchmark over a generated cohort (10,000 patients, seed 42, no faults): every resource goes through
//! `Engine::process` (decode + `PatientState::apply`, no model) in cohort-wide delivery order, then the size of
//! each patient's `PatientState::encode()` (goal: median under 1 KiB) side by side with `serde_json::to_vec`
//! of the same state, measured in the same run, and events applied per second (best of 3 rounds, beside a
//! decode-only pass over the same bytes).
//!
//! Run: `cargo bench --bench state` (release build). `ONCOWATCH_BENCH_PATIENTS` overrides the cohort size.

use oncowatch::core::decode::{decode_record, DecodeOptions};
use oncowatch::core::engine::{Engine, States};
use oncowatch::core::identity::{EventTime, Pseudonymizer, DEVELOPMENT_PSEUDONYM_KEY};
use oncowatch::core::reason::Outcome;
use oncowatch::core::state::{PatientState, PointKind};
use oncowatch::core::vocabulary::Vocabulary;
use oncowatch::drivers::generate::{generate_patient, CohortOptions, Faults};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Every record's bytes in one buffer, with (delivery time, patient, resource index, start, end) per record.
struct Records {
    buf: Vec<u8>,
    index: Vec<(EventTime, u32, u32, usize, usize)>,
}

impl Records {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.index.iter().map(|&(_, _, _, s, e)| &self.buf[s..e])
    }
}

/// Generates patients `1..=n` on all cores, one patient at a time (memory stays at the serialised bytes).
fn generate(n: u64) -> Records {
    let opts = CohortOptions { patients: n, seed: 42, faults: Faults::default() };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
    let parts: Vec<Records> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut r = Records { buf: Vec::new(), index: Vec::new() };
                    for p in (1..=n).filter(|p| p % threads == t) {
                        let gp = generate_patient(&opts, p);
                        for (i, d) in gp.resources.iter().enumerate() {
                            let start = r.buf.len();
                            serde_json::to_writer(&mut r.buf, &d.resource).expect("serialise");
                            r.index.push((d.at, p as u32, i as u32, start, r.buf.len()));
                        }
                    }
                    r
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("generator thread")).collect()
    });
    let mut all = Records { buf: Vec::with_capacity(parts.iter().map(|p| p.buf.len()).sum()), index: Vec::new() };
    for p in parts {
        let off = all.buf.len();
        all.buf.extend_from_slice(&p.buf);
        all.index.extend(p.index.into_iter().map(|(at, pa, i, s, e)| (at, pa, i, s + off, e + off)));
    }
    // Cohort-wide delivery order, as `delivery_order` and `replay` see it: by time, then patient, then the
    // patient's own order.
    all.index.sort_unstable_by_key(|&(at, p, i, _, _)| (at, p, i));
    all
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[usize], q: f64) -> usize {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let patients: u64 = std::env::var("ONCOWATCH_BENCH_PATIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let t = Instant::now();
    let records = generate(patients);
    let gen_time = t.elapsed();
    let engine = Engine::new(
        Vocabulary::builtin().expect("vocabulary"),
        DecodeOptions::default(),
        Pseudonymizer::new(DEVELOPMENT_PSEUDONYM_KEY.as_bytes()),
    );
    println!(
        "state bench: {} patients (seed 42, no faults), {} records, {:.1} MiB of FHIR JSON (generated in {:.1} s)",
        patients,
        records.index.len(),
        records.buf.len() as f64 / 1048576.0,
        gen_time.as_secs_f64()
    );

    let rounds = 3;
    let mut best_decode = Duration::MAX;
    let mut best_process = Duration::MAX;
    let mut states = States::new();
    let mut applied = 0u64;
    let mut resources = 0u64;
    for _ in 0..rounds {
        // Interleave the two so machine noise hits both alike.
        let t = Instant::now();
        for r in records.iter() {
            black_box(decode_record(r, &engine.vocab, &engine.decode, None));
        }
        best_decode = best_decode.min(t.elapsed());
        let mut s = States::new();
        let (mut a, mut n) = (0u64, 0u64);
        let t = Instant::now();
        for r in records.iter() {
            let report = engine.process(&mut s, r, None, None);
            n += report.resources.len() as u64;
            a += report.resources.iter().filter(|x| x.outcome == Outcome::Applied).count() as u64;
            black_box(&report);
        }
        best_process = best_process.min(t.elapsed());
        (states, applied, resources) = (s, a, n);
    }

    let mut enc: Vec<usize> = Vec::with_capacity(states.len());
    let mut json: Vec<usize> = Vec::with_capacity(states.len());
    let mut points: Vec<usize> = Vec::with_capacity(states.len());
    let mut best_enc = Duration::MAX;
    let mut best_json = Duration::MAX;
    for round in 0..rounds {
        let t = Instant::now();
        for s in states.values() {
            let b = s.encode();
            if round == 0 {
                enc.push(b.len());
            }
            black_box(b);
        }
        best_enc = best_enc.min(t.elapsed());
        let t = Instant::now();
        for s in states.values() {
            let b = serde_json::to_vec(s).expect("json");
            if round == 0 {
                json.push(b.len());
            }
            black_box(b);
        }
        best_json = best_json.min(t.elapsed());
    }
    // Where the encoded bytes go: the points (by kind) against everything else (demographics, recent ids,
    // tombstones, dropped minima, policy).
    let mut point_bytes: Vec<usize> = Vec::with_capacity(states.len());
    let mut kinds = [0usize; 4];
    for s in states.values() {
        points.push(s.points().len());
        point_bytes.push(postcard::to_stdvec(s.points()).expect("postcard").len());
        for p in s.points() {
            kinds[match p.kind {
                PointKind::Measurement { .. } => 0,
                PointKind::Imaging(_) => 1,
                PointKind::Finding(_) => 2,
                _ => 3,
            }] += 1;
        }
    }
    let total_points: usize = points.iter().sum();
    let total_point_bytes: usize = point_bytes.iter().sum();
    let total_enc: usize = enc.iter().sum();
    let total_json: usize = json.iter().sum();
    enc.sort_unstable();
    json.sort_unstable();
    points.sort_unstable();

    println!(
        "resources {resources}, applied {applied}, states {} (every state re-encodes: {})",
        states.len(),
        states.values().all(|s| PatientState::decode(&s.encode()).as_ref() == Ok(s))
    );
    println!();
    println!(
        "{:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}",
        "state size, bytes per patient", "median", "p90", "p99", "max", "mean", "total MiB", "states/s"
    );
    let row = |name: &str, v: &[usize], total: usize, d: Duration| {
        println!(
            "{:<36} {:>8} {:>8} {:>8} {:>8} {:>8.0} {:>12.2} {:>12.0}",
            name,
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            v[v.len() - 1],
            total as f64 / v.len() as f64,
            total as f64 / 1048576.0,
            v.len() as f64 / d.as_secs_f64()
        );
    };
    row("serde_json::to_vec (baseline)", &json, total_json, best_json);
    row("PatientState::encode (postcard)", &enc, total_enc, best_enc);
    println!(
        "ratio encode / json: median {:.2}, total {:.2}; median under 1 KiB: {}",
        pct(&enc, 0.5) as f64 / pct(&json, 0.5) as f64,
        total_enc as f64 / total_json as f64,
        pct(&enc, 0.5) < 1024
    );
    println!(
        "points per state: median {}, p90 {}, p99 {}, max {}",
        pct(&points, 0.5),
        pct(&points, 0.9),
        pct(&points, 0.99),
        points[points.len() - 1]
    );
    let per = |k: usize| kinds[k] as f64 / states.len() as f64;
    println!(
        "mean per state: {:.1} points ({:.1} measurement, {:.1} imaging, {:.1} finding, {:.1} other) in {:.0} bytes ({:.1} bytes/point); \
         the rest {:.0} bytes",
        total_points as f64 / states.len() as f64,
        per(0),
        per(1),
        per(2),
        per(3),
        total_point_bytes as f64 / states.len() as f64,
        total_point_bytes as f64 / total_points as f64,
        (total_enc - total_point_bytes) as f64 / states.len() as f64
    );
    println!();
    let mib = records.buf.len() as f64 / 1048576.0;
    println!("{:<44} {:>12} {:>12} {:>10}", "pass (best of 3, one core)", "resources/s", "applied/s", "MiB/s");
    println!(
        "{:<44} {:>12.0} {:>12} {:>10.1}",
        "decode_record only (baseline)",
        resources as f64 / best_decode.as_secs_f64(),
        "-",
        mib / best_decode.as_secs_f64()
    );
    println!(
        "{:<44} {:>12.0} {:>12.0} {:>10.1}",
        "Engine::process (decode + apply, no model)",
        resources as f64 / best_process.as_secs_f64(),
        applied as f64 / best_process.as_secs_f64(),
        mib / best_process.as_secs_f64()
    );
    println!("ratio process / decode only: {:.2}", best_decode.as_secs_f64() / best_process.as_secs_f64());
}
