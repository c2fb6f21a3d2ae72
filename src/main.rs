//! The `oncowatch` command: parses the command line, loads configuration, calls a driver.

use clap::{Parser, Subcommand};
use oncowatch::config::{Config, LogFormat};
use oncowatch::core::decode::DecodeOptions;
use oncowatch::core::engine::Engine;
use oncowatch::core::identity::EventTime;
use oncowatch::core::identity::Pseudonymizer;
use oncowatch::core::model::Model;
use oncowatch::drivers::demo::{demo, DemoOptions};
use oncowatch::drivers::kafka::service::{serve, HttpOptions};
use oncowatch::drivers::replay::{replay, ReplayOptions};
use oncowatch::drivers::train::{train, write_model, TrainOptions};
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
        /// Score with this model file instead of model.path from configuration.
        #[arg(long, value_name = "FILE", conflicts_with = "no_model")]
        model: Option<PathBuf>,
        /// Do not score: state and accounting only.
        #[arg(long)]
        no_model: bool,
        /// Write alerts (FHIR RiskAssessment, one JSON per line) here instead of stdout.
        #[arg(long, value_name = "FILE")]
        alerts: Option<PathBuf>,
        /// Treat every record as arriving at this time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ): events older
        /// than alerts.max_event_lag_days then raise no alert (backfill).
        #[arg(long, value_name = "TIME")]
        arrival_time: Option<String>,
    },
    /// Train the metastasis model on labelled FHIR history (e.g. a generated cohort).
    ///
    /// Replays the input through the same decode, state and feature code as the service, takes labelled
    /// snapshots, splits by patient (train / calibration / test), fits smartcore's gradient-boosted trees,
    /// calibrates them (isotonic), and evaluates on the test patients (metrics and the alert policy over their
    /// timelines). Hyper-parameters: section [train] of the configuration, or the flags below.
    ///
    /// Example (the default model): oncowatch generate --patients 10000 --seed 42 --out cohort && oncowatch
    /// train --input cohort/cohort.ndjson --out models/default.json --report-dir models/report
    Train {
        /// Input files or directories (repeatable), as for replay.
        #[arg(long = "input", required = true, value_name = "PATH")]
        inputs: Vec<PathBuf>,
        /// Prediction horizon in days (default: train.horizon_days).
        #[arg(long)]
        horizon_days: Option<u32>,
        /// Where to write the model file.
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
        /// Folder for report.json, report.md and the plots.
        #[arg(long, value_name = "DIR")]
        report_dir: PathBuf,
        /// Write the exact rows the model saw: patient_hash,as_of,label,split,<features>.
        #[arg(long, value_name = "FILE.csv")]
        export_features: Option<PathBuf>,
        /// Number of trees (default: train.n_estimators).
        #[arg(long)]
        trees: Option<usize>,
        /// Tree depth (default: train.max_depth).
        #[arg(long)]
        max_depth: Option<u16>,
    },
    /// Write a synthetic oncology cohort as FHIR R4, with its ground truth (truth.csv).
    ///
    /// Output in DIR: cohort.ndjson (one resource per line, in delivery order) or bundles/ (one transaction
    /// Bundle per patient, plus a batch Bundle of its corrections when faults are on), and truth.csv
    /// (patient_hash,primary_site,stage,metastasis_date,eligible; patient_hash is the pseudonym under the
    /// configured key). The same arguments give byte-identical files. Every patient is synthetic.
    ///
    /// Example: oncowatch generate --patients 1000 --seed 1 --out cohort/ --duplicates 0.02 --late 0.05
    Generate {
        /// Number of patients.
        #[arg(long, value_name = "N")]
        patients: u64,
        /// Seed of the cohort: the same seed and options give the same files.
        #[arg(long, default_value_t = 1, value_name = "S")]
        seed: u64,
        /// Output directory (created if missing; files in it are overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// ndjson: DIR/cohort.ndjson; bundles: DIR/bundles/*.json.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: GenerateFormat,
        /// Fraction of resources delivered weeks to months after their event time.
        #[arg(long, default_value_t = 0.0, value_name = "F")]
        late: f64,
        /// Fraction of resources delivered twice (an exact copy, later).
        #[arg(long, default_value_t = 0.0, value_name = "F")]
        duplicates: f64,
        /// Fraction of resources followed by an amended version (meta.versionId "2", value changed slightly).
        #[arg(long, default_value_t = 0.0, value_name = "F")]
        amended: f64,
        /// Fraction of resources followed by an entered-in-error version (never the diagnosis or metastasis).
        #[arg(long, default_value_t = 0.0, value_name = "F")]
        entered_in_error: f64,
    },
    /// Run the stream service: consume FHIR from Kafka, keep per-patient state, publish alerts.
    ///
    /// Reads input.topics in consumer group run.group_id; publishes alerts, scores and DLQ records to the
    /// output.* topics; keeps state in output.state_topic (compacted, same partition count as the inputs);
    /// serves /metrics, /health/live and /health/ready on http.listen. Needs a pseudonym key of its own
    /// (privacy.pseudonym_key; the development key is refused). SIGTERM or Ctrl-C: stop consuming, flush,
    /// commit, leave the group; a second signal exits at once.
    ///
    /// Example: ONCOWATCH__PRIVACY__PSEUDONYM_KEY=... oncowatch run --config prod.toml
    Run {
        /// Score with this model file instead of model.path.
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
    },
    /// Run an embedded Kafka broker (librdkafka's mock cluster) for demos and tests, until SIGTERM/Ctrl-C.
    ///
    /// Prints its bootstrap address (127.0.0.1:PORT) as the first line on stdout, then serves the design's
    /// topics (fhir.events, oncowatch.alerts, oncowatch.scores, oncowatch.dlq, oncowatch.state,
    /// oncowatch.repartition) or those of --topics. In memory only, no compaction, about 5 MiB kept per
    /// partition: not for production.
    ///
    /// Example: BOOTSTRAP=$(oncowatch broker --partitions 3 | head -n1)
    Broker {
        /// Partitions of every topic.
        #[arg(long, default_value_t = 3, value_name = "N")]
        partitions: i32,
        /// Topics to create (comma-separated), instead of the design's.
        #[arg(long, value_delimiter = ',', value_name = "T,...")]
        topics: Option<Vec<String>>,
    },
    /// Produce FHIR records into a Kafka topic: from files, from the generator, or re-driven from a DLQ.
    ///
    /// Inputs as for replay (one message per record), or --generate N (one message per resource of a
    /// synthetic cohort), or --from-dlq TOPIC (every record of that topic, key and value unchanged, e.g.
    /// after a fix). Keyed by patient (`Patient/<id>`): multi-patient Bundles are split into one Bundle per
    /// patient; records over --max-message-bytes are split likewise. Exit code 0 when every message was
    /// delivered, 1 when some were not, 2 when the input or Kafka could not be used.
    ///
    /// Example: oncowatch feed --brokers 127.0.0.1:9092 --topic fhir.events examples/fhir --rate 100
    #[command(group(clap::ArgGroup::new("source").required(true).args(["inputs", "generate", "from_dlq"])))]
    Feed {
        /// Bootstrap servers (default: kafka.brokers).
        #[arg(long, value_name = "HOST:PORT,...")]
        brokers: Option<String>,
        /// Destination topic (default: the first of input.topics).
        #[arg(long, value_name = "T")]
        topic: Option<String>,
        /// Files, directories, or `-` for stdin.
        #[arg(value_name = "INPUT")]
        inputs: Vec<PathBuf>,
        /// Feed a generated cohort of N patients instead of files.
        #[arg(long, value_name = "N")]
        generate: Option<u64>,
        /// Seed of the generated cohort.
        #[arg(long, default_value_t = 1, value_name = "S", requires = "generate")]
        seed: u64,
        /// Input records per second (default: unlimited).
        #[arg(long, value_name = "R")]
        rate: Option<f64>,
        /// Re-drive every record of this dead-letter topic (key and value unchanged) to --topic.
        #[arg(long, value_name = "TOPIC")]
        from_dlq: Option<String>,
        /// Key messages by canonical patient key (default: input.keyed_by_patient).
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        keyed_by_patient: Option<bool>,
        /// Largest message produced (librdkafka message.max.bytes); larger records are split per patient.
        #[arg(long, default_value_t = 1_000_000, value_name = "BYTES")]
        max_message_bytes: usize,
        /// Seconds to wait for metadata, for delivery reports at the end, and for a stalled DLQ read.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
    /// The whole service on this machine, nothing to install: embedded broker, generated cohort, alerts.
    ///
    /// Starts an in-process Kafka (librdkafka's mock cluster), runs the real service against it (the same
    /// code as `run`, at-least-once), feeds a synthetic cohort at a steady rate, prints one line per alert
    /// (pseudonym, tier, risk, top reasons) on stdout, serves /metrics on http.listen meanwhile, and ends with
    /// a summary checked against the generator's truth. Every patient is synthetic.
    Demo {
        /// Patients in the generated cohort.
        #[arg(long, default_value_t = 120)]
        patients: u64,
        /// Resources fed per second.
        #[arg(long, default_value_t = 600.0)]
        rate: f64,
        /// Longest run, in seconds.
        #[arg(long, default_value_t = 90)]
        duration: u64,
        /// Seed of the cohort.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Score with this model file instead of model.path.
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
    },
    /// Print the configuration in force (defaults, file and environment merged), secrets masked.
    Config,
}

/// Output format of `generate`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum GenerateFormat {
    Ndjson,
    Bundles,
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

/// First SIGTERM / Ctrl-C: set the returned flag (graceful stop). Second: exit at once.
fn stop_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            eprintln!("oncowatch: second signal, exiting now");
            std::process::exit(130);
        }
        eprintln!("oncowatch: stopping (flush, commit, leave the group); a second signal exits at once");
    })?;
    Ok(stop)
}

fn load_model(path: &std::path::Path) -> anyhow::Result<Model> {
    Model::load(path).map_err(|e| anyhow::anyhow!("model {}: {e}", path.display()))
}

/// The engine with the model of `--model`, else `model.path`, and the configured alert policy.
fn scoring_engine(cfg: &Config, model: Option<PathBuf>) -> anyhow::Result<Engine> {
    let path = model.unwrap_or_else(|| cfg.model.path.clone());
    Ok(engine(cfg)?.with_model(load_model(&path)?, cfg.alerts.clone()))
}

fn engine(cfg: &Config) -> anyhow::Result<Engine> {
    let vocab = cfg.load_vocabulary()?;
    let (key, _dev) = cfg.pseudonym_key();
    Ok(Engine::new(vocab, DecodeOptions { max_record_bytes: cfg.input.max_record_bytes }, Pseudonymizer::new(key.as_bytes())))
}

fn run(command: Command, cfg: &Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate { patients, seed, out, format, late, duplicates, amended, entered_in_error } => {
            use oncowatch::drivers::generate::{self, CohortOptions, Faults, Format, GenerateOptions};
            let (key, _dev) = cfg.pseudonym_key();
            let pseudonyms = Pseudonymizer::new(key.as_bytes());
            let opts = GenerateOptions {
                cohort: CohortOptions { patients, seed, faults: Faults { late, duplicates, amended, entered_in_error } },
                out,
                format: match format {
                    GenerateFormat::Ndjson => Format::Ndjson,
                    GenerateFormat::Bundles => Format::Bundles,
                },
                progress: std::io::stderr().is_terminal(),
            };
            let s = generate::generate(&opts, &pseudonyms)?;
            tracing::info!(
                patients = s.patients,
                eligible = s.eligible,
                metastatic = s.metastatic,
                resources = s.resources,
                files = s.files,
                bytes = s.bytes,
                faults = ?s.faults,
                "generate finished"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Train { inputs, horizon_days, out, report_dir, export_features, trees, max_depth } => {
            let engine = engine(cfg)?;
            let mut config = cfg.train.clone();
            if let Some(h) = horizon_days {
                config.horizon_days = h;
            }
            if let Some(t) = trees {
                config.n_estimators = t;
            }
            if let Some(d) = max_depth {
                config.max_depth = d;
            }
            let engine = Engine { policy: cfg.alerts.clone(), ..engine };
            let opts = TrainOptions {
                inputs,
                out: out.clone(),
                report_dir: report_dir.clone(),
                export_features,
                config,
                progress: std::io::stderr().is_terminal(),
            };
            let trained = train(&engine, &opts)?;
            write_model(&out, &trained.model_bytes)?;
            let t = &trained.report["test"];
            tracing::info!(
                model = %trained.report["model_version"].as_str().unwrap_or(""),
                auc = t["auc"].as_f64(),
                ece = t["ece"].as_f64(),
                seconds = trained.seconds.get("total").copied(),
                "model written to {}, report in {}",
                out.display(),
                report_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { model } => {
            let (_, dev) = cfg.pseudonym_key();
            if dev {
                anyhow::bail!("privacy.pseudonym_key is empty or the built-in one: `run` refuses the development key (set ONCOWATCH__PRIVACY__PSEUDONYM_KEY to a secret of your own)");
            }
            let engine = std::sync::Arc::new(scoring_engine(cfg, model)?);
            tracing::info!(kafka = %oncowatch::drivers::kafka::client::describe(&cfg.kafka), "starting");
            let stop = stop_on_signals()?;
            let http = HttpOptions {
                listen: cfg.http.listen.clone(),
                token: (!cfg.http.token.is_empty()).then(|| cfg.http.token.expose().to_string()),
            };
            let metrics = std::sync::Arc::new(oncowatch::metrics::Metrics::new());
            let health = std::sync::Arc::new(oncowatch::drivers::http::Health::default());
            let summary = serve(engine, cfg.run_config(), &http, metrics, health, stop)?;
            tracing::info!(records = summary.records, "stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Broker { partitions, topics } => {
            use oncowatch::drivers::kafka::broker::{EmbeddedBroker, DESIGN_TOPICS};
            use std::io::Write;
            let names: Vec<&str> = match &topics {
                Some(t) => t.iter().map(String::as_str).collect(),
                None => DESIGN_TOPICS.to_vec(),
            };
            let broker = EmbeddedBroker::start(partitions, &names)?;
            let (tx, rx) = std::sync::mpsc::channel();
            ctrlc::set_handler(move || {
                let _ = tx.send(());
            })?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", broker.bootstrap())?;
            out.flush()?;
            drop(out);
            tracing::info!(
                bootstrap = %broker.bootstrap(),
                partitions,
                topics = ?names,
                "embedded broker (librdkafka mock cluster) running; SIGTERM or Ctrl-C stops it"
            );
            let _ = rx.recv();
            drop(broker);
            tracing::info!("embedded broker stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Feed { brokers, topic, inputs, generate, seed, rate, from_dlq, keyed_by_patient, max_message_bytes, timeout } => {
            use oncowatch::drivers::kafka::feed::{feed, FeedError, FeedOptions, FeedSource};
            let mut kafka = cfg.kafka.clone();
            if let Some(b) = brokers {
                kafka.brokers = b;
            }
            let topic = match topic.or_else(|| cfg.input.topics.first().cloned()) {
                Some(t) => t,
                None => anyhow::bail!("--topic: required (input.topics is empty)"),
            };
            let source = match (generate, from_dlq) {
                (Some(patients), _) => {
                    FeedSource::Generate(oncowatch::drivers::generate::CohortOptions { patients, seed, ..Default::default() })
                }
                (None, Some(dlq)) => FeedSource::Dlq(dlq),
                (None, None) => FeedSource::Inputs(inputs),
            };
            let mut opts = FeedOptions::new(kafka, topic, source);
            opts.rate = rate;
            opts.keyed_by_patient = keyed_by_patient.unwrap_or(cfg.input.keyed_by_patient);
            opts.max_message_bytes = max_message_bytes;
            opts.timeout = std::time::Duration::from_secs(timeout.max(1));
            opts.progress = std::io::stderr().is_terminal();
            let vocab = cfg.load_vocabulary()?;
            let decode = DecodeOptions { max_record_bytes: cfg.input.max_record_bytes };
            match feed(&opts, &vocab, &decode) {
                Ok(s) => {
                    tracing::info!(
                        records = s.records,
                        messages = s.messages,
                        keyed = s.keyed,
                        unkeyed = s.unkeyed,
                        split = s.split,
                        bytes = s.bytes,
                        seconds = s.seconds,
                        "feed finished: every message delivered"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(FeedError::Delivery { summary, first_error }) => {
                    tracing::error!(
                        records = summary.records,
                        messages = summary.messages,
                        delivered = summary.delivered,
                        failed = summary.failed,
                        oversize = summary.oversize,
                        first_error = first_error.as_deref().unwrap_or(""),
                        "feed finished: some messages were not delivered"
                    );
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Demo { patients, rate, duration, seed, model } => {
            let mut engine = scoring_engine(cfg, model)?;
            // The generated history is years old and arrives now: backfill suppression would silence it.
            engine.policy.max_event_lag_days = i64::from(u32::MAX);
            if rate.is_nan() || rate <= 0.0 {
                anyhow::bail!("--rate must be above 0");
            }
            let opts = DemoOptions {
                patients,
                seed,
                rate,
                duration: std::time::Duration::from_secs(duration),
                partitions: 6,
                http_listen: cfg.http.listen.clone(),
            };
            eprintln!("oncowatch demo: {patients} synthetic patients at {rate} resources/s; metrics on http://{}/metrics", cfg.http.listen);
            let s = demo(engine, &opts).map_err(|e| anyhow::anyhow!("demo: {e}"))?;
            let total: u64 = s.alerts.values().sum();
            eprintln!("\n== demo summary");
            eprintln!("resources fed:        {}", s.resources_fed);
            eprintln!(
                "alerts by tier:       watch {}, high {}, urgent {}",
                s.alerts.get("watch").copied().unwrap_or(0),
                s.alerts.get("high").copied().unwrap_or(0),
                s.alerts.get("urgent").copied().unwrap_or(0)
            );
            eprintln!(
                "true / false alerts:  {} / {} (true: metastasis followed within the horizon; {} patients developed metastasis)",
                s.true_alerts, s.false_alerts, s.patients_with_metastasis
            );
            eprintln!("median lead time:     {}", s.median_lead_days.map(|d| format!("{d:.0} days")).unwrap_or_else(|| "n/a".into()));
            if total == 0 {
                eprintln!("(no alerts: try more --patients or a longer --duration)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            print!("{}", cfg.dump());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { inputs, summary_json, rejects, features_out, model, no_model, alerts, arrival_time } => {
            let mut engine = engine(cfg)?;
            let model_path = model.unwrap_or_else(|| cfg.model.path.clone());
            if !no_model && !model_path.as_os_str().is_empty() {
                let m = load_model(&model_path)?;
                tracing::info!(model = %m.version, "scoring with {}", model_path.display());
                engine = engine.with_model(m, cfg.alerts.clone());
            }
            let arrival = match arrival_time {
                Some(t) => Some(
                    EventTime::parse_utc(&t)
                        .ok_or_else(|| anyhow::anyhow!("--arrival-time {t:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"))?,
                ),
                None => None,
            };
            let opts =
                ReplayOptions { inputs, summary_json, rejects, features_out, alerts, arrival, progress: std::io::stderr().is_terminal() };
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
