//! The `oncowatch` command: parses the command line, loads configuration, calls a driver.

use clap::{Parser, Subcommand};
use oncowatch::config::{Config, LogFormat};
use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::Engine;
use oncowatch::core::identity::Pseudonymizer;
use oncowatch::drivers::replay::{replay, ReplayOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Early warning of metastasis from a FHIR R4 event stream.
///
/// oncowatch reads Observation, Condition, ImagingStudy and Patient resources (alone or in Bundles), keeps a
/// small state per patient and accounts for every resource it reads: applied, ignored with a reason, or
/// rejected with a reason.
#[derive(Parser)]
#[command(name = "oncowatch", version, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML) overriding the built-in defaults; see `oncowatch config`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log line format on stderr (default: log.format from configuration).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read FHIR records from files, directories or stdin and account for every resource.
    ///
    /// Inputs: NDJSON files (one resource or Bundle per line), `.json` files (one resource or Bundle each),
    /// directories (searched recursively for .json, .ndjson and .jsonl), or `-` for NDJSON on stdin.
    /// Exit code 0 when the input was read (even with rejected resources), 2 when it could not be read.
    ///
    /// Example: oncowatch replay examples/ --summary-json summary.json --rejects rejects.ndjson
    Replay {
        /// Files, directories, or `-` for stdin.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
        /// Write the summary (records, resources, applied, ignored and rejected by reason) as JSON here.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
        /// Write one JSON line per rejected resource (source, line, entry, resource_type, reason, message).
        #[arg(long, value_name = "FILE")]
        rejects: Option<PathBuf>,
        /// Write one CSV row of features per patient, as of its latest event: patient_hash, as_of,
        /// primary_site, metastasis_confirmed, eligible, then the features in schema order (missing = empty).
        #[arg(long, value_name = "FILE.csv")]
        features_out: Option<PathBuf>,
    },
    /// Print the configuration in force (defaults, file and environment merged), secrets masked.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oncowatch: {e}");
            return ExitCode::from(2);
        }
    };
    oncowatch::logging::init(cli.log_format.unwrap_or(cfg.log.format));
    match run(cli.command, &cfg) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("oncowatch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn engine(cfg: &Config) -> anyhow::Result<Engine> {
    let vocab = cfg.load_vocabulary()?;
    let (key, _dev) = cfg.pseudonym_key();
    Ok(Engine::new(
        vocab,
        DecodeOptions {
            max_record_bytes: cfg.input.max_record_bytes,
        },
        Pseudonymizer::new(key.as_bytes()),
    ))
}

fn run(command: Command, cfg: &Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config => {
            print!("{}", cfg.dump());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            inputs,
            summary_json,
            rejects,
            features_out,
        } => {
            let engine = engine(cfg)?;
            let opts = ReplayOptions {
                inputs,
                summary_json,
                rejects,
                features_out,
                progress: std::io::stderr().is_terminal(),
            };
            let out = replay(&engine, &opts)?;
            let t = &out.tally;
            tracing::info!(
                records = t.records,
                resources = t.resources,
                applied = t.applied,
                ignored = t.ignored_total(),
                rejected = t.rejected_total(),
                patients = out.states.len(),
                "replay finished"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
