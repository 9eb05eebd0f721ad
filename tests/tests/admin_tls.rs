//! The admin API over HTTPS when the operator gives a certificate: a CA and a certificate for
//! 127.0.0.1 are made with the `openssl` command; a client that trusts the CA gets its answer, a
//! client that does not is refused in the handshake, and plain HTTP on the same port gets no
//! HTTP answer (the token never crosses in clear).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{run_command, Platform, PlatformConfig, Services, TestEnv};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

const READY_WITHIN: Duration = Duration::from_secs(120);

fn openssl(env: &TestEnv, name: &str, args: &[&str]) -> Result<()> {
    let mut command = Command::new("openssl");
    command.args(args).current_dir(&env.scratch);
    run_command(env, name, &mut command, Duration::from_secs(60))?
        .ensure_success(&format!("openssl {name}"))
}

/// `GET path` over TLS to `addr`, trusting only `ca` (or the system's roots when `None`);
/// the whole answer, or why the connection failed.
fn https_get(addr: &str, path: &str, token: &str, ca: Option<&Path>) -> Result<String> {
    let mut connector = SslConnector::builder(SslMethod::tls_client())?;
    connector.set_verify(SslVerifyMode::PEER);
    if let Some(ca) = ca {
        connector.set_ca_file(ca)?;
    }
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut tls = connector
        .build()
        .connect("127.0.0.1", tcp)
        .map_err(|e| anyhow::anyhow!("TLS handshake: {e}"))?;
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn the_admin_api_serves_https_with_the_given_certificate() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    openssl(
        &env,
        "ca",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=mysimbdp test CA",
        ],
    )?;
    openssl(
        &env,
        "csr",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    std::fs::write(env.path("san.cnf"), "subjectAltName=IP:127.0.0.1\n")?;
    openssl(
        &env,
        "sign",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    )?;
    let mut config = PlatformConfig::new(&env.tenant, vec![])?;
    config.admin_tls = Some((env.path("server.pem"), env.path("server.key")));
    let mut platform = Platform::start(&env, "platform", &config)?;
    let ca = env.path("ca.pem");
    let addr = config.admin_listen.clone();

    let deadline = Instant::now() + READY_WITHIN;
    let answer = loop {
        match https_get(&addr, "/scope", &config.token, Some(&ca)) {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => {
                if let Some(status) = platform.exit_status()? {
                    bail!("the platform exited ({status}):\n{}", platform.log_tail(30));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => bail!("no HTTPS answer within {READY_WITHIN:?}: {error:#}"),
        }
    };
    ensure!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"operator\""),
        "GET /scope over HTTPS: {answer}"
    );

    let untrusted = https_get(&addr, "/scope", &config.token, None);
    ensure!(
        untrusted
            .as_ref()
            .is_err_and(|e| e.to_string().contains("certificate verify failed")),
        "a client that does not trust the CA: {untrusted:?}"
    );

    let mut plain = TcpStream::connect(&addr).context("plain TCP")?;
    plain.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        plain,
        "GET /scope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    ensure!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP on the HTTPS port was answered: {}",
        String::from_utf8_lossy(&raw)
    );
    platform.stop()?;
    Ok(())
}
