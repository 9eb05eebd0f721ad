//! The admin API over TLS, when the operator gives a certificate: plain HTTP is for loopback
//! only. OpenSSL, which the Kafka client (SCRAM) and the Cassandra driver (TLS) already link, so
//! the platform carries one TLS stack. Handshakes run in their own tasks, so a client that never
//! finishes one holds up nobody else.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_openssl::SslStream;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("admin TLS: {doing}: {source}")]
pub struct TlsError {
    doing: String,
    source: openssl::error::ErrorStack,
}

/// A server context from a PEM certificate chain and its PEM private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<Arc<SslAcceptor>, TlsError> {
    let err = |doing: String| move |source| TlsError { doing, source };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(err("creating a TLS context".into()))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(err(format!("reading certificate {}", cert.display())))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(err(format!("reading private key {}", key.display())))?;
    builder
        .check_private_key()
        .map_err(err("the key does not match the certificate".into()))?;
    Ok(Arc::new(builder.build()))
}

/// Accepts TCP connections and hands over those whose TLS handshake succeeded.
pub struct TlsListener {
    done: mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` (the accept loop runs until the listener is dropped).
    pub fn new(listener: TcpListener, acceptor: Arc<SslAcceptor>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (send, done) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "admin API: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, ready) = (acceptor.clone(), send.clone());
                tokio::spawn(async move {
                    match handshake(&acceptor, tcp).await {
                        Ok(stream) => {
                            let _ = ready.send((stream, peer)).await;
                        }
                        Err(reason) => {
                            tracing::debug!(%peer, reason, "admin API: TLS handshake failed")
                        }
                    }
                });
                if send.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { done, local })
    }
}

async fn handshake(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.done.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends with the listener; then nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
