//! tansu, a Kafka-compatible broker process on 127.0.0.1, for the integration tests that need a real
//! external broker (the mock cluster is in-process and has limits: DESIGN.md "The embedded broker").
//!
//! Install it with `.ci/install-tansu.sh` (`cargo install --locked tansu@0.6.0 --features dynostore`). The
//! binary is looked up as `$TANSU_BIN`, then `tansu` on `PATH`, then `~/.cargo/bin/tansu`. When it is
//! missing, [`start_tansu`] returns `None` (the test skips) unless `CI=true`, where a missing broker is a
//! failure. Known limits of tansu 0.6 with rdkafka 0.39 (DEPENDENCIES.md): no transactions (EndTxn is not
//! supported), slow produce (about 160 messages/s pipelined).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// How long tansu may take to accept a metadata request after start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running tansu broker; killed (and reaped) on drop.
pub struct TansuGuard {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    /// The broker's stdout and stderr.
    pub log: PathBuf,
}

impl TansuGuard {
    /// The broker's output so far (for assertion messages).
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Creates topics through the admin API (which tansu supports, unlike the mock cluster).
    pub fn create_topics(&self, topics: &[(&str, i32)]) -> Result<(), String> {
        create_topics(&self.bootstrap, topics, &[])
    }
}

impl Drop for TansuGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the tansu binary is, if installed.
pub fn tansu_binary() -> Option<PathBuf> {
    let works = |p: &Path| Command::new(p).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if let Some(p) = std::env::var_os("TANSU_BIN").map(PathBuf::from) {
        return works(&p).then_some(p);
    }
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect::<Vec<_>>()).unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin").join("tansu"));
    on_path.into_iter().chain(cargo_bin).find(|p| p.is_file() && works(p))
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
}

/// Starts tansu with in-memory storage on a free loopback port and waits until it answers a metadata
/// request. `None` when tansu is not installed and `CI` is not `true`.
pub fn start_tansu() -> Option<TansuGuard> {
    let Some(bin) = tansu_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "tansu is not installed but CI=true: run .ci/install-tansu.sh \
                 (cargo install --locked tansu@0.6.0 --features dynostore), or set TANSU_BIN"
            );
        }
        eprintln!("tansu not installed (.ci/install-tansu.sh): skipping the external-broker test");
        return None;
    };
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("oncowatch-tansu-{}-{port}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("tansu log file");
    let err = out.try_clone().expect("tansu log file");
    let child = Command::new(&bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut guard = TansuGuard { child, bootstrap: format!("127.0.0.1:{port}"), log };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("tansu exited at start ({status}):\n{}", guard.log_text());
        }
        if metadata_ok(&guard.bootstrap) {
            return Some(guard);
        }
        if Instant::now() > deadline {
            panic!("tansu did not answer on {} within {:?}:\n{}", guard.bootstrap, READY_TIMEOUT, guard.log_text());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metadata_ok(bootstrap: &str) -> bool {
    let consumer: BaseConsumer = match ClientConfig::new().set("bootstrap.servers", bootstrap).set("log_level", "0").create() {
        Ok(c) => c,
        Err(_) => return false,
    };
    consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty())
}

/// Creates topics with the admin API (`config`: topic configs such as `("cleanup.policy", "compact")`).
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)], config: &[(&str, &str)]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().map_err(|e| e.to_string())?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| config.iter().fold(NewTopic::new(name, *partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(admin.create_topics(&new, &opts)).map_err(|e| e.to_string())?;
    for r in results {
        if let Err((name, code)) = r {
            return Err(format!("create topic {name}: {code}"));
        }
    }
    Ok(())
}

/// Runs a future to completion on this thread (rdkafka's admin futures complete from its own thread).
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(100)),
        }
    }
}
