//! A faulty front of the sentiment service, for the enrich fault tests: an HTTP/1.1 server of
//! the test's own that forwards each batch to the real service, except that it answers 500 for
//! a batch holding a text with one marker, garbage for a text with another, and may delay every
//! answer, or hold every answer until the test lets it go. The decision depends on the texts
//! alone, so a test knows in advance which records are refused, whatever the batching.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

/// What the front does besides forwarding.
#[derive(Default)]
pub struct Faults {
    /// A batch with a text containing this gets HTTP 500.
    pub error_marker: Option<String>,
    /// A batch with a text containing this gets a 200 whose body is not the contract.
    pub garbage_marker: Option<String>,
    /// Every answer waits this long first.
    pub delay_ms: AtomicU64,
    /// While set, every answer waits until it is cleared: a service as slow as the test wants.
    pub hold: AtomicBool,
    /// Requests waiting for `hold` to clear.
    pub held: AtomicU64,
    /// The most texts one request carried.
    pub largest: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
}

/// The running front; it stops accepting when dropped.
pub struct FaultyService {
    pub port: u16,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

impl FaultyService {
    /// Listens on a free loopback port and forwards to `upstream` (a base URL).
    pub fn start(upstream: &str, faults: Faults) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the faulty front")?;
        let port = listener.local_addr()?.port();
        let faults = Arc::new(faults);
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{upstream}/v1/sentiment");
        let (f, s) = (faults.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (f, url) = (f.clone(), url.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &f, &url);
                });
            }
        });
        Ok(Self { port, faults, stop })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultyService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one kept-alive connection until the client closes it.
fn serve(stream: TcpStream, faults: &Faults, url: &str) -> Result<()> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let texts: Vec<String> = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["texts"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        faults
            .largest
            .fetch_max(texts.len() as u64, Ordering::Relaxed);
        if faults.hold.load(Ordering::SeqCst) {
            faults.held.fetch_add(1, Ordering::SeqCst);
            while faults.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            faults.held.fetch_sub(1, Ordering::SeqCst);
        }
        let delay = faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let holds = |marker: &Option<String>| {
            marker
                .as_deref()
                .is_some_and(|m| texts.iter().any(|t| t.contains(m)))
        };
        let (status, answer) = if holds(&faults.error_marker) {
            (500, br#"{"error": "injected failure"}"#.to_vec())
        } else if holds(&faults.garbage_marker) {
            (200, b"<html>not the contract</html>".to_vec())
        } else {
            let response = agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(&body[..])?;
            let status = response.status().as_u16();
            (status, response.into_body().read_to_vec()?)
        };
        faults.requests.fetch_add(1, Ordering::Relaxed);
        // One write per answer: pieces written apart wait on Nagle's algorithm and the client's
        // delayed ACK, ~40 ms each on a kept-alive connection.
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        out.extend_from_slice(&answer);
        writer.write_all(&out)?;
    }
}
