//! The whole service around the stream loop: HTTP endpoints, the repartition stage when inputs are not
//! keyed by patient, and the stateful stage. `run` and `demo` both start it through [`serve`].

use super::run::{run, RunConfig, RunError, RunSummary};
use crate::core::engine::Engine;
use crate::drivers::http::{self, Health};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where to serve the operations endpoints.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// e.g. `127.0.0.1:9464`; empty: none.
    pub listen: String,
    pub token: Option<String>,
}

/// Runs the service until `stop` is set; blocks. `metrics` and `health` are shared with the caller.
pub fn serve(
    engine: Arc<Engine>,
    cfg: RunConfig,
    http_opts: &HttpOptions,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary, RunError> {
    let http_thread = if http_opts.listen.is_empty() {
        None
    } else {
        let (addr, handle) = http::serve(&http_opts.listen, metrics.clone(), health.clone(), http_opts.token.clone(), stop.clone())
            .map_err(|e| RunError::Config(format!("http.listen {}: {e}", http_opts.listen)))?;
        tracing::info!(%addr, "serving /metrics, /health/live, /health/ready");
        Some(handle)
    };
    let repartition = if cfg.keyed_by_patient {
        None
    } else {
        let (e, c, s) = (engine.clone(), cfg.clone(), stop.clone());
        Some(
            std::thread::Builder::new()
                .name("oncowatch-repartition".into())
                .spawn(move || super::repartition::run(e, c, s))
                .map_err(|e| RunError::Config(e.to_string()))?,
        )
    };
    let result = run(engine, cfg, metrics, health, stop.clone());
    stop.store(true, Ordering::SeqCst);
    if let Some(h) = repartition {
        match h.join() {
            Ok(Err(e)) => tracing::error!("repartition stage: {e}"),
            Err(_) => tracing::error!("repartition stage panicked"),
            Ok(Ok(n)) => tracing::info!(records = n, "repartition stage stopped"),
        }
    }
    if let Some(h) = http_thread {
        let _ = h.join();
    }
    result
}
