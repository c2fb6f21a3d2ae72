//! `oncowatch generate`: a synthetic oncology cohort as FHIR R4, with its ground truth.
//!
//! Output in `DIR`: `cohort.ndjson` (one resource per line, in delivery order across the whole cohort) or
//! `bundles/` (per patient `<nnnnnn>-1-transaction.json`, a transaction Bundle of every first version with
//! `urn:uuid` references, and, when faults made copies or second versions, `<nnnnnn>-2-corrections.json`, a
//! batch Bundle of those), plus `truth.csv` (`patient_hash,primary_site,stage,metastasis_date,eligible`).
//!
//! Deterministic: the same arguments give byte-identical files. Each patient is simulated from its own
//! random stream (`cohort::simulate`), faults from another (`fhir::deliver`), with the crate's own PRNG
//! (`rng`), so the output never changes with a dependency update, patient `n` is the same in a cohort of any
//! size, and fault fractions never change the clinical content. The clinical model and its tuning knobs are
//! documented in [`cohort`].
//!
//! For other drivers and tests: [`cohort`](fn@cohort) (the whole cohort in memory), [`generate_patient`],
//! [`delivery_order`], [`truth_csv`]. The command itself streams: patients are generated in parallel
//! batches, NDJSON lines spill to a temporary file with an index, and the index is sorted by delivery time,
//! so memory stays small for large cohorts.

pub mod cohort;
pub mod fhir;
pub mod rng;

pub use cohort::{Story, Truth};
pub use fhir::{Delivered, FaultKind, Faults};

use crate::core::identity::{EventTime, PatientKey, Pseudonymizer};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What cohort to generate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CohortOptions {
    pub patients: u64,
    pub seed: u64,
    pub faults: Faults,
}

/// One generated patient: canonical key, truth, resources as delivered (in delivery order).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedPatient {
    pub n: u64,
    pub id: String,
    pub key: PatientKey,
    pub truth: Truth,
    pub resources: Vec<Delivered>,
}

/// Generates patient `n` (1-based).
pub fn generate_patient(opts: &CohortOptions, n: u64) -> GeneratedPatient {
    let story = cohort::simulate(opts.seed, n);
    let resources = fhir::deliver(&story, opts.seed, &opts.faults);
    GeneratedPatient { n, id: story.id, key: story.key, truth: story.truth, resources }
}

/// The whole cohort in memory (patients 1..=N). For large N prefer [`generate`], which streams.
pub fn cohort(opts: &CohortOptions) -> Vec<GeneratedPatient> {
    (1..=opts.patients).map(|n| generate_patient(opts, n)).collect()
}

/// The truth of the cohort only (no FHIR built): cheap, for tests and reports.
pub fn cohort_truth(opts: &CohortOptions) -> Vec<(PatientKey, Truth)> {
    (1..=opts.patients)
        .map(|n| {
            let s = cohort::simulate(opts.seed, n);
            (s.key, s.truth)
        })
        .collect()
}

/// The cohort-wide delivery order: (patient index, resource index) pairs sorted by delivery time, ties by
/// patient then by the patient's own order.
pub fn delivery_order(patients: &[GeneratedPatient]) -> Vec<(usize, usize)> {
    let mut order: Vec<(EventTime, usize, usize)> =
        patients.iter().enumerate().flat_map(|(p, gp)| gp.resources.iter().enumerate().map(move |(r, d)| (d.at, p, r))).collect();
    order.sort_unstable();
    order.into_iter().map(|(_, p, r)| (p, r)).collect()
}

/// The header of `truth.csv`.
pub const TRUTH_HEADER: &str = "patient_hash,primary_site,stage,metastasis_date,eligible";

/// One `truth.csv` line (without newline).
pub fn truth_row(pseudonyms: &Pseudonymizer, key: &PatientKey, t: &Truth) -> String {
    format!(
        "{},{},{},{},{}",
        pseudonyms.pseudonym(key),
        t.site.map_or("", |s| s.as_str()),
        t.stage.map_or(String::new(), |s| s.to_string()),
        t.metastasis.map_or(String::new(), |m| m.to_date()),
        u8::from(t.eligible)
    )
}

/// The whole `truth.csv` text.
pub fn truth_csv(pseudonyms: &Pseudonymizer, rows: &[(PatientKey, Truth)]) -> String {
    let mut s = String::with_capacity(64 * (rows.len() + 1));
    s.push_str(TRUTH_HEADER);
    s.push('\n');
    for (k, t) in rows {
        s.push_str(&truth_row(pseudonyms, k, t));
        s.push('\n');
    }
    s
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Ndjson,
    Bundles,
}

/// What `generate` was asked to do.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub cohort: CohortOptions,
    pub out: PathBuf,
    pub format: Format,
    pub progress: bool,
}

/// What `generate` wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateSummary {
    pub patients: u64,
    pub eligible: u64,
    pub metastatic: u64,
    /// Resources written (every copy and version counted).
    pub resources: u64,
    /// Files written (the NDJSON file or the Bundle files, plus truth.csv).
    pub files: u64,
    pub bytes: u64,
    /// Delivered resources per fault kind.
    pub faults: BTreeMap<&'static str, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid option: {0}")]
    Invalid(String),
    #[error("cannot write {path}: {message}")]
    Output { path: String, message: String },
}

fn out_err(p: &Path) -> impl Fn(std::io::Error) -> GenerateError + '_ {
    move |e| GenerateError::Output { path: p.display().to_string(), message: e.to_string() }
}

fn validate(opts: &CohortOptions) -> Result<(), GenerateError> {
    let f = &opts.faults;
    for (name, v) in
        [("--late", f.late), ("--duplicates", f.duplicates), ("--amended", f.amended), ("--entered-in-error", f.entered_in_error)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(GenerateError::Invalid(format!("{name} must be a fraction between 0 and 1, got {v}")));
        }
    }
    Ok(())
}

/// Patients generated per parallel batch.
const BATCH: u64 = 256;

/// A generated patient, serialised.
struct Written {
    key: PatientKey,
    truth: Truth,
    /// NDJSON: (delivery time, line with newline). Bundles: (0, file name, file text) pairs as lines.
    lines: Vec<(EventTime, String)>,
    faults: Vec<FaultKind>,
    resources: u64,
}

fn serialise(opts: &CohortOptions, format: Format, n: u64) -> Written {
    let gp = generate_patient(opts, n);
    let faults = gp.resources.iter().filter_map(|d| d.fault).collect();
    let resources = gp.resources.len() as u64;
    let lines = match format {
        Format::Ndjson => gp
            .resources
            .iter()
            .map(|d| {
                let mut s = d.resource.to_string();
                s.push('\n');
                (d.at, s)
            })
            .collect(),
        Format::Bundles => {
            let (tx, batch) = fhir::bundles(opts.seed, &gp.id, &gp.resources);
            let mut v = vec![(EventTime(0), tx.to_string())];
            v.extend(batch.map(|b| (EventTime(1), b.to_string())));
            v
        }
    };
    Written { key: gp.key, truth: gp.truth, lines, faults, resources }
}

/// Generates patients `lo..hi` on the available cores, in patient order.
fn batch(opts: &CohortOptions, format: Format, lo: u64, hi: u64) -> Vec<Written> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16) as u64;
    let count = hi.saturating_sub(lo);
    if threads == 1 || count < 16 {
        return (lo..hi).map(|n| serialise(opts, format, n)).collect();
    }
    let per = count.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let a = lo + t * per;
                let b = (a + per).min(hi);
                s.spawn(move || (a..b).map(|n| serialise(opts, format, n)).collect::<Vec<_>>())
            })
            .collect();
        let mut out = Vec::with_capacity(count as usize);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A panic in generation is a bug; re-raise it rather than write a partial cohort.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// Writes the cohort into `opts.out`.
pub fn generate(opts: &GenerateOptions, pseudonyms: &Pseudonymizer) -> Result<GenerateSummary, GenerateError> {
    validate(&opts.cohort)?;
    let dir = &opts.out;
    std::fs::create_dir_all(dir).map_err(out_err(dir))?;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(opts.cohort.patients);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} patients ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message("generating");
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut summary = GenerateSummary::default();
    let mut truth = String::new();
    truth.push_str(TRUTH_HEADER);
    truth.push('\n');

    // NDJSON: lines spill to a temporary file; the index is sorted by delivery time at the end.
    let final_ndjson = dir.join("cohort.ndjson");
    let spill_path = dir.join(".cohort.ndjson.tmp");
    let mut spill = match opts.format {
        Format::Ndjson => Some(BufWriter::with_capacity(1 << 20, std::fs::File::create(&spill_path).map_err(out_err(&spill_path))?)),
        Format::Bundles => None,
    };
    let bundle_dir = dir.join("bundles");
    if opts.format == Format::Bundles {
        std::fs::create_dir_all(&bundle_dir).map_err(out_err(&bundle_dir))?;
    }
    // (delivery time, global sequence, offset, length)
    let mut index: Vec<(EventTime, u64, u64, u32)> = Vec::new();
    let mut offset = 0u64;

    let mut lo = 1u64;
    while lo <= opts.cohort.patients {
        let hi = (lo + BATCH).min(opts.cohort.patients + 1);
        for (w, n) in batch(&opts.cohort, opts.format, lo, hi).into_iter().zip(lo..hi) {
            summary.patients += 1;
            summary.eligible += u64::from(w.truth.eligible);
            summary.metastatic += u64::from(w.truth.metastasis.is_some());
            summary.resources += w.resources;
            for f in &w.faults {
                *summary.faults.entry(f.as_str()).or_default() += 1;
            }
            truth.push_str(&truth_row(pseudonyms, &w.key, &w.truth));
            truth.push('\n');
            match &mut spill {
                Some(out) => {
                    for (at, line) in &w.lines {
                        out.write_all(line.as_bytes()).map_err(out_err(&spill_path))?;
                        let len = u32::try_from(line.len()).map_err(|_| GenerateError::Invalid("a resource over 4 GiB".into()))?;
                        index.push((*at, index.len() as u64, offset, len));
                        offset += line.len() as u64;
                    }
                }
                None => {
                    for (k, (_, text)) in w.lines.iter().enumerate() {
                        let name = if k == 0 { format!("{n:06}-1-transaction.json") } else { format!("{n:06}-2-corrections.json") };
                        let p = bundle_dir.join(name);
                        std::fs::write(&p, text).map_err(out_err(&p))?;
                        summary.files += 1;
                        summary.bytes += text.len() as u64;
                    }
                }
            }
        }
        bar.set_position(hi - 1);
        lo = hi;
    }
    if let Some(out) = spill.take() {
        let file = out.into_inner().map_err(|e| out_err(&spill_path)(e.into_error()))?;
        drop(file);
        bar.set_message("ordering");
        index.sort_unstable();
        let src = std::fs::File::open(&spill_path).map_err(out_err(&spill_path))?;
        let dst = std::fs::File::create(&final_ndjson).map_err(out_err(&final_ndjson))?;
        let mut dst = BufWriter::with_capacity(1 << 20, dst);
        let mut buf = Vec::new();
        for (_, _, off, len) in &index {
            buf.resize(*len as usize, 0);
            read_at(&src, &mut buf, *off).map_err(out_err(&spill_path))?;
            dst.write_all(&buf).map_err(out_err(&final_ndjson))?;
        }
        dst.flush().map_err(out_err(&final_ndjson))?;
        drop(src);
        std::fs::remove_file(&spill_path).map_err(out_err(&spill_path))?;
        summary.files += 1;
        summary.bytes += offset;
    }
    let truth_path = dir.join("truth.csv");
    std::fs::write(&truth_path, &truth).map_err(out_err(&truth_path))?;
    summary.files += 1;
    summary.bytes += truth.len() as u64;
    bar.finish_and_clear();
    Ok(summary)
}

#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, off)
}

#[cfg(not(unix))]
fn read_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(buf)
}
