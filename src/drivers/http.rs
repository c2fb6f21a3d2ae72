//! The HTTP endpoints for operations: `/metrics` (Prometheus text), `/health/live`, `/health/ready`.
//! A small blocking HTTP/1.1 server on its own thread: GET only, one request per connection; an optional
//! bearer token protects `/metrics` (it can carry model and volume information).

use crate::metrics::Metrics;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Liveness and readiness flags shared with the service.
#[derive(Default)]
pub struct Health {
    pub live: AtomicBool,
    pub ready: AtomicBool,
    /// Why not ready (a short, identifier-free sentence).
    pub reason: std::sync::Mutex<String>,
}

impl Health {
    pub fn set_ready(&self, ready: bool, reason: &str) {
        self.ready.store(ready, Ordering::SeqCst);
        if let Ok(mut r) = self.reason.lock() {
            *r = reason.to_string();
        }
    }
}

/// Binds `addr` (e.g. `127.0.0.1:9464`, or port 0 for any) and serves until `stop` is set. Returns the bound
/// address and the thread.
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    token: Option<String>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(std::net::SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let handle = std::thread::Builder::new().name("oncowatch-http".into()).spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = handle(stream, &metrics, &health, token.as_deref());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    tracing::warn!("http accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok((local, handle))
}

fn handle(mut stream: TcpStream, metrics: &Metrics, health: &Health, token: Option<&str>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = token.is_none();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let (Some(t), Some((name, value))) = (token, line.split_once(':')) {
            if name.eq_ignore_ascii_case("authorization") && value.trim() == format!("Bearer {t}") {
                authorized = true;
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, ctype) = match (method, path) {
        ("GET", "/metrics") if !authorized => ("401 Unauthorized", "unauthorized\n".to_string(), "text/plain"),
        ("GET", "/metrics") => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
        ("GET", "/health/live") if health.live.load(Ordering::SeqCst) => ("200 OK", "live\n".into(), "text/plain"),
        ("GET", "/health/live") => ("503 Service Unavailable", "not live\n".into(), "text/plain"),
        ("GET", "/health/ready") if health.ready.load(Ordering::SeqCst) => ("200 OK", "ready\n".into(), "text/plain"),
        ("GET", "/health/ready") => {
            let why = health.reason.lock().map(|r| r.clone()).unwrap_or_default();
            ("503 Service Unavailable", format!("not ready: {why}\n"), "text/plain")
        }
        ("GET", _) => ("404 Not Found", "not found\n".into(), "text/plain"),
        _ => ("405 Method Not Allowed", "GET only\n".into(), "text/plain"),
    };
    write!(stream, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    stream.flush()
}
