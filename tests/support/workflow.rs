//! The alert workflow's services as a test sees them: Airflow's REST API (with the credentials
//! `deploy/local/up.sh` generated), the SMTP server's Maildir store, presigned links, and a
//! relay whose absence stands for an Airflow outage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::env::state_dir;

fn local_port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// Where `just up` runs Airflow's API (`MYSIMBDP_AIRFLOW_PORT` moves it, as in `deploy/local`).
pub fn airflow_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        local_port("MYSIMBDP_AIRFLOW_PORT", 9480)
    )
}

/// Where `just up` runs the object store (`MYSIMBDP_S3_PORT`).
pub fn s3_url() -> String {
    format!("http://127.0.0.1:{}", local_port("MYSIMBDP_S3_PORT", 9400))
}

/// Where `just up` runs the SMTP server (`MYSIMBDP_SMTP_PORT`).
pub fn smtp_addr() -> String {
    format!("127.0.0.1:{}", local_port("MYSIMBDP_SMTP_PORT", 2525))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// Checks that Airflow, the object store and the SMTP server answer; fails (never skips) with
/// a pointer to `just up` when one does not.
pub fn check_workflow_services() -> Result<()> {
    let (airflow, s3, smtp_at) = (airflow_url(), s3_url(), smtp_addr());
    let mut down = Vec::new();
    match agent()
        .get(&format!("{airflow}/api/v2/monitor/health"))
        .call()
    {
        Ok(r) if r.status().is_success() => {}
        other => down.push(format!(
            "Airflow at {airflow}: {:?}",
            other.map(|r| r.status())
        )),
    }
    match agent().get(&format!("{s3}/")).call() {
        Ok(r) if [200, 403].contains(&r.status().as_u16()) => {}
        other => down.push(format!("s3proxy at {s3}: {:?}", other.map(|r| r.status()))),
    }
    let mut greeting = [0u8; 3];
    let smtp = TcpStream::connect(&smtp_at).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.read_exact(&mut greeting)
    });
    if smtp.is_err() || &greeting != b"220" {
        down.push(format!("SMTP at {smtp_at}: {smtp:?}"));
    }
    if !down.is_empty() {
        bail!(
            "the workflow tests need Airflow, s3proxy and the SMTP server; start them with \
             `just up` (or `deploy/local/up.sh workflow`):\n  {}",
            down.join("\n  ")
        );
    }
    Ok(())
}

/// The Airflow admin password `up.sh` generated.
pub fn airflow_password_file() -> PathBuf {
    state_dir().join("airflow/admin.password")
}

/// A bearer token for Airflow's API.
pub fn airflow_token() -> Result<String> {
    let password = std::fs::read_to_string(airflow_password_file())
        .context("reading Airflow's generated password (start it with `just up`)")?;
    let mut response = agent()
        .post(&format!("{}/auth/token", airflow_url()))
        .send_json(json!({"username": "mysimbdp", "password": password.trim()}))
        .context("asking Airflow for a token")?;
    let body: Value = response.body_mut().read_json()?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token in {body}"))
}

/// Every run of DAG `critical_condition` whose conf names `tenant`.
pub fn airflow_runs_of(tenant: &str) -> Result<Vec<Value>> {
    let token = airflow_token()?;
    let mut runs = Vec::new();
    let mut offset = 0;
    loop {
        let mut response = agent()
            .get(&format!(
                "{}/api/v2/dags/critical_condition/dagRuns?limit=100&offset={offset}",
                airflow_url()
            ))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .context("listing DAG runs")?;
        let body: Value = response.body_mut().read_json()?;
        let page = body["dag_runs"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        runs.extend(page.into_iter().filter(|r| r["conf"]["tenant"] == tenant));
    }
    Ok(runs)
}

/// The body of a GET (a presigned link), failing on any status but 200.
pub fn http_get(url: &str) -> Result<Vec<u8>> {
    let mut response = agent()
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    if response.status() != 200 {
        bail!("GET {url}: {}", response.status());
    }
    Ok(response.body_mut().read_to_vec()?)
}

/// One message of the SMTP server's store.
#[derive(Debug, Clone)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Quoted-printable decoding (RFC 2045): soft line breaks and `=XX`.
fn unquote(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every message in the store (`<state>/mail/new`) sent to `address`.
pub fn mails_to(address: &str) -> Result<Vec<Mail>> {
    let dir = state_dir().join("mail/new");
    let mut mails = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(_) => return Ok(mails),
    };
    for entry in entries {
        let text = std::fs::read_to_string(entry?.path())?;
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mail = Mail {
            body: if head.contains("quoted-printable") {
                unquote(body)
            } else {
                body.to_owned()
            },
            headers,
        };
        if mail.header("To") == Some(address) {
            mails.push(mail);
        }
    }
    Ok(mails)
}

/// A TCP relay to `upstream` on a port chosen now but listened on only from [`Relay::open`]:
/// before that, whoever connects finds nothing there, as when the upstream service is down.
pub struct Relay {
    pub port: u16,
    upstream: String,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn reserve(upstream: &str) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Ok(Self {
            port,
            upstream: upstream.to_owned(),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts relaying: the upstream is reachable through the port from now on.
    pub fn open(&self) -> Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .with_context(|| format!("listening on 127.0.0.1:{}", self.port))?;
        let (upstream, stop) = (self.upstream.clone(), self.stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|mut s| s.write_all(b""));
    }
}

/// An HTTP endpoint of the test's own that keeps the JSON body of every POST it receives and
/// answers 200: the tenant's webhook.
pub struct Webhook {
    pub port: u16,
    received: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Webhook {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let keep = keep.clone();
                std::thread::spawn(move || {
                    if let Some(body) = read_post(&stream) {
                        if let (Ok(json), Ok(mut all)) =
                            (serde_json::from_slice(&body), keep.lock())
                        {
                            all.push(json);
                        }
                    }
                    let mut stream = &stream;
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Ok(Self { port, received })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The bodies received so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The body of one HTTP/1.1 request with a Content-Length.
fn read_post(stream: &TcpStream) -> Option<Vec<u8>> {
    use std::io::BufRead;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}
