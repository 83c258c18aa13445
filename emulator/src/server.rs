//! The running server: TLS accept loop, HTTP/1.1 and HTTP/2 connections, and the dispatch
//! of each request to the admin API, the token endpoint or Key Vault, by path first.
//!
//! Every connection task belongs to the server task, so stopping the server (by
//! [`Emulator::shutdown`] or by dropping the [`Emulator`]) ends them all.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::header::{AUTHORIZATION, HOST};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::respond::{Req, Resp, kv_error};
use crate::state::{Seed, State, StateError};
use crate::tls::{self, TlsError};
use crate::{admin, attestation, entra, keyvault};

/// Largest request body read (admin seeds can be large; Key Vault bodies are small).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Bound on a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of [`Emulator::start`].
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// Generating or writing TLS material failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The seed could not be applied.
    #[error("applying the seed")]
    Seed(#[from] StateError),
}

/// How to start an [`Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; `127.0.0.1:0` (any free port) by default.
    pub listen: SocketAddr,
    /// Directory that receives `ca.pem` (written atomically) before `start` returns.
    pub tls_dir: Option<PathBuf>,
    /// Clients, vaults and secrets to add before serving.
    pub seed: Option<Seed>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls_dir: None,
            seed: None,
        }
    }
}

/// What every request handler sees.
pub(crate) struct Ctx {
    pub(crate) state: Arc<State>,
    /// The port the emulator listens on, used in challenges and links to the login host.
    pub(crate) port: u16,
}

/// A running emulator. Dropping it (or calling [`Emulator::shutdown`]) stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    ca_pem: String,
    ca_path: Option<PathBuf>,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Generates the TLS material, applies the seed, binds the listener, writes `ca.pem` to
    /// `tls_dir` if set, and starts serving on the current tokio runtime.
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let material = tls::generate()?;
        let state = Arc::new(State::new());
        if let Some(seed) = cfg.seed {
            state.apply_seed(seed)?;
        }
        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: cfg.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let ca_path = match &cfg.tls_dir {
            Some(dir) => Some(tls::write_ca(dir, &material.ca_pem)?),
            None => None,
        };
        let ctx = Arc::new(Ctx {
            state: Arc::clone(&state),
            port: addr.port(),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let acceptor = TlsAcceptor::from(material.server_config);
        let task = tokio::spawn(serve(listener, acceptor, ctx, stop_rx));
        tracing::info!(%addr, "keyvault emulator listening");
        Ok(Emulator {
            addr,
            ca_pem: material.ca_pem,
            ca_path,
            state,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// PEM of the generated CA certificate, to be trusted by clients.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where `ca.pem` was written, if a TLS directory was given.
    pub fn ca_path(&self) -> Option<&std::path::Path> {
        self.ca_path.as_deref()
    }

    /// The shared state: the admin API's operations, callable directly.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// `https://<vault>.vault.localhost:PORT/`, the vault URL a client uses.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}{}:{}/", keyvault::VAULT_SUFFIX, self.port())
    }

    /// `vault.localhost:PORT`, the value for `--keyvault-dns-suffix`.
    pub fn dns_suffix(&self) -> String {
        format!("{}:{}", &keyvault::VAULT_SUFFIX[1..], self.port())
    }

    /// `https://login.localhost:PORT`, the Entra ID authority host.
    pub fn authority_host(&self) -> String {
        format!("https://login.localhost:{}", self.port())
    }

    /// `https://attest.localhost:PORT`, the attestation service (Azure Attestation's
    /// `POST /attest/SevSnpVm?api-version=2022-08-01`, `GET /certs`) and the `iss` of its
    /// tokens, hence the `authority` of release policies.
    pub fn attestation_url(&self) -> String {
        attestation::issuer(self.port())
    }

    /// `https://attest.localhost:PORT`, the AMD KDS stand-in: `GET
    /// {kds_url}/vcek/v1/{product}/{hwid hex}?blSPL=..` answers VCEKs added with
    /// [`State::add_vcek`] (the value for the daemon's `--attestation-vcek-url`).
    pub fn kds_url(&self) -> String {
        attestation::issuer(self.port())
    }

    /// Stops accepting, ends every open connection, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        tracing::info!(addr = %self.addr, "keyvault emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until told to stop; dropping the `JoinSet` aborts open connections.
async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<Ctx>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(connection(tcp, peer, acceptor.clone(), Arc::clone(&ctx)));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One TLS connection, HTTP/1.1 or HTTP/2 by ALPN.
async fn connection(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, ctx: Arc<Ctx>) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(dispatch(&ctx, peer, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(err) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Reads the request and routes it by path: `/admin`, the token endpoint, else Key Vault.
async fn dispatch(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let path = parts.uri.path().to_owned();
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return kv_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadParameter",
                "The request body is too large or could not be read.",
                None,
            );
        }
    };
    let req = Req {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        host,
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default().to_owned()),
        body,
        peer,
    };

    let (kind, resp) = if req.path == "/admin" || req.path.starts_with("/admin/") {
        ("admin", admin::handle(ctx, &req))
    } else if attestation::is_attestation_path(&req.path) {
        ("attestation", attestation::handle(ctx, &req).await)
    } else if let Some(tenant) = entra::token_path_tenant(&req.path) {
        ("token", entra::handle(ctx, &req, tenant).await)
    } else {
        ("keyvault", keyvault::handle(ctx, &req).await)
    };
    tracing::debug!(
        kind,
        method = %req.method,
        host = req.host.as_deref().unwrap_or(""),
        path = %req.path,
        status = resp.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}
