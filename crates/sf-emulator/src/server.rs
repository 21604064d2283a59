//! Serving: bind, optionally wrap in TLS, run each connection with a kill
//! switch (for injected resets), and shut down gracefully.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::state::Emulator;

/// Lets a handler drop its own connection without answering (an injected reset).
#[derive(Clone)]
pub struct ConnControl(pub Arc<Notify>);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Config(String),
}

/// A running emulator. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (or https with `--tls`): the login URL and the instance URL.
    pub base_url: String,
    pub emulator: Arc<Emulator>,
    /// PEM of the CA that signed the TLS certificate, when serving TLS.
    pub ca_pem: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to a few seconds),
    /// and saves the state file if one is configured.
    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.emulator.save_state()
    }
}

struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_pem: String,
}

fn make_tls() -> Result<Tls, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sf-emulator local CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| e.to_string())?;
    let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(|e| e.to_string())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .map_err(|e| e.to_string())?;
    let chain = vec![leaf.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| e.to_string())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        ca_pem: ca_cert.pem(),
    })
}

/// Starts an emulator on `addr` (port 0 picks a free port).
pub async fn start(addr: &str, config: EmulatorConfig) -> Result<Running, StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    start_on(listener, config).await
}

/// Starts an emulator on a listener the caller already bound.
pub async fn start_on(
    listener: TcpListener,
    config: EmulatorConfig,
) -> Result<Running, StartError> {
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: "listener".into(),
        source,
    })?;
    let tls = if config.tls {
        Some(make_tls().map_err(StartError::Tls)?)
    } else {
        None
    };
    if let (Some(path), Some(t)) = (&config.tls_cert_out, &tls) {
        std::fs::write(path, &t.ca_pem)
            .map_err(|e| StartError::Tls(format!("cannot write {}: {e}", path.display())))?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{local}");
    let emulator = Arc::new(Emulator::new(config).map_err(StartError::Config)?);
    let _ = emulator.base_url.set(base_url.clone());
    let router = crate::routes::router(emulator.clone());
    let (tx, rx) = watch::channel(false);
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let task = tokio::spawn(accept_loop(listener, router, tls, rx));
    Ok(Running {
        addr: local,
        base_url,
        emulator,
        ca_pem,
        shutdown: tx,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Tls>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = tls.map(|t| t.acceptor);
    loop {
        let (stream, _) = tokio::select! {
            res = listener.accept() => match res {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        let kill = Arc::new(Notify::new());
        let svc =
            TowerToHyperService::new(router.clone().layer(Extension(ConnControl(kill.clone()))));
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let served = async {
                match acceptor {
                    Some(acc) => match acc.accept(stream).await {
                        Ok(tls) => {
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    },
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            };
            tokio::select! {
                _ = served => {}
                _ = kill.notified() => {
                    // An injected reset: close with RST instead of FIN. The fd is still
                    // open here, because the connection is dropped only after this.
                    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                    let _ = socket2::SockRef::from(&borrowed).set_linger(Some(Duration::ZERO));
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(3)) => tracing::info!("shutdown: gave up waiting for open connections"),
    }
}
