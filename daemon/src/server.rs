//! `vaultlet serve`: wires config, Key Vault access, the volume registry and
//! the CSI services onto the unix socket, until shutdown.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use csi_proto::v1::controller_server::ControllerServer;
use csi_proto::v1::identity_server::IdentityServer;
use csi_proto::v1::node_server::NodeServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::info;

use crate::attest::Attestor;
use crate::config::Config;
use crate::csi::{ControllerService, IdentityService, NodeService};
use crate::keyvault::{KeyVault, TransportError};
use crate::mount::fuse::FuseBackend;
use crate::mount::{Mounter, SysMounter};
use crate::telemetry::Metrics;
use crate::volume::{Registry, VolumeError};

/// Start-up and serving failures. Each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Key Vault transport could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The state dir could not be opened.
    #[error(transparent)]
    State(#[from] VolumeError),
    /// The socket could not be prepared or bound.
    #[error("socket {path}: {source}")]
    Socket {
        /// Socket path.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process is serving on the socket.
    #[error("socket {path}: another process is serving on it; refusing to take it over")]
    InUse {
        /// Socket path.
        path: String,
    },
    /// Something that is not a socket sits at the socket path.
    #[error("socket {path}: a non-socket file exists there; refusing to replace it")]
    NotASocket {
        /// Socket path.
        path: String,
    },
    /// The metrics endpoint could not bind.
    #[error("--metrics-addr {addr}: {source}")]
    Metrics {
        /// Address.
        addr: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Binds the CSI socket: mode 0600 from the start (umask 0177 around
/// bind(2)), replacing a stale socket file but never a live one (another
/// daemon answering on it) nor a non-socket file. Returns the listener and
/// the socket's inode, so shutdown removes only its own socket.
fn bind_socket(path: &Path) -> Result<(UnixListener, u64), ServeError> {
    use std::os::unix::fs::MetadataExt;
    let err = |source| ServeError::Socket {
        path: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse {
                    path: path.display().to_string(),
                });
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    let inode = std::fs::symlink_metadata(path).map_err(err)?.ino();
    Ok((listener, inode))
}

/// Removes the socket file only if it is still the one this process bound.
fn remove_own_socket(path: &Path, inode: u64) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}

/// Runs the daemon with the real mounter until `shutdown` resolves.
/// Published volumes stay mounted across a shutdown.
///
/// # Errors
/// [`ServeError`].
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(config, Arc::new(SysMounter), shutdown).await
}

/// [`serve`] with an injected [`Mounter`] (tests use a fake).
///
/// # Errors
/// [`ServeError`].
pub async fn serve_with(
    config: Config,
    mounter: Arc<dyn Mounter>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let registry = Arc::new(Registry::open(&config.state_dir)?);
    let metrics = Arc::new(Metrics::default());
    let keyvault = Arc::new(KeyVault::new(&config, metrics.clone())?);
    // Lazy: nothing is gathered until a confidential volume asks.
    let attestor = Arc::new(Attestor::new(
        config.attestation.clone(),
        keyvault.http().clone(),
    ));
    metrics.published.set(registry.len() as i64);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        move || async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if let Some(addr) = config.metrics_addr {
        let local = crate::telemetry::serve(addr, metrics.clone(), stopped())
            .await
            .map_err(|source| ServeError::Metrics {
                addr: addr.to_string(),
                source,
            })?;
        info!(addr = %local, "metrics endpoint listening");
    }

    // Stale namespace FUSE mounts of a previous process are detached before
    // the socket serves.
    let fuse = Arc::new(FuseBackend::new(&config.state_dir, mounter.as_ref()));
    let (listener, socket_inode) = bind_socket(&config.socket_path)?;
    let node = NodeService::new(
        config.clone(),
        keyvault,
        registry,
        mounter,
        fuse,
        metrics.clone(),
        attestor.clone(),
    );
    let rotation = tokio::spawn(node.clone().run_rotation());
    let reattest = tokio::spawn(attestor.run_refresh());
    metrics.set_ready(true);
    info!(
        socket = %config.socket_path.display(),
        driver = %config.driver_name,
        node_id = %config.node_id,
        version = env!("CARGO_PKG_VERSION"),
        "serving CSI"
    );
    let result = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(IdentityService::new(
            config.driver_name.clone(),
        )))
        .add_service(NodeServer::new(node))
        .add_service(ControllerServer::new(ControllerService))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    metrics.set_ready(false);
    rotation.abort();
    reattest.abort();
    let _ = stop_tx.send(true);
    remove_own_socket(&config.socket_path, socket_inode);
    info!("stopped; published volumes stay mounted");
    result.map_err(ServeError::from)
}
