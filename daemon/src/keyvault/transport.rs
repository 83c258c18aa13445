//! The HTTP client every Azure SDK client of the daemon shares: one
//! `reqwest` connection pool that trusts `--extra-ca-file` on top of the
//! system roots, closes idle connections after `--http-idle-timeout`, and
//! resolves `*.localhost` to loopback (RFC 6761 §6.3) and `*.invalid` to
//! nothing (RFC 6761 §6.4) without asking DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Errors building the transport. Each names the file or setting.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `--extra-ca-file` could not be read.
    #[error("--extra-ca-file {path}: {source}")]
    ReadCa {
        /// The path as given.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--extra-ca-file` holds no usable PEM certificate.
    #[error("--extra-ca-file {path}: no PEM certificate could be parsed")]
    BadCa {
        /// The path as given.
        path: String,
    },
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Resolver: `localhost` and `*.localhost` → 127.0.0.1 and ::1; `*.invalid`
/// → an immediate error; anything else → the system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackResolver;

/// Whether `host` is `localhost` or under `.localhost` (case-insensitive,
/// trailing dot allowed).
pub fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

fn is_invalid_tld(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "invalid" || h.ends_with(".invalid")
}

impl Resolve for LoopbackResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if is_localhost(&host) {
                let addrs: Vec<SocketAddr> = vec![
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                ];
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            if is_invalid_tld(&host) {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("host {host} does not resolve (RFC 6761 .invalid)").into();
                return Err(err);
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The SDK transport: reqwest, except that failures no retry can fix (a
/// name that does not resolve, a certificate that does not verify) are
/// re-labelled [`ErrorKind::Other`] so the SDK's retry policy gives up at
/// once instead of spending its whole budget on them (CASES C47).
#[derive(Debug, Clone)]
pub struct VaultletHttp(pub reqwest::Client);

/// Whether a transport error is permanent: DNS says the name does not exist,
/// or TLS verification of the server certificate failed.
pub fn is_permanent_transport_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("rfc 6761 .invalid")
            || text.contains("invalid peer certificate")
            || text.contains("certificate verify failed")
            || text.contains("unknownissuer")
            || text.contains("name or service not known")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[async_trait::async_trait]
impl HttpClient for VaultletHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        match <reqwest::Client as HttpClient>::execute_request(&self.0, request).await {
            Err(e)
                if matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection)
                    && is_permanent_transport_failure(&e) =>
            {
                Err(azure_core::Error::with_error(
                    ErrorKind::Other,
                    e,
                    "permanent transport failure (not retried)",
                ))
            }
            other => other,
        }
    }
}

/// Longest wait for any read on a Key Vault, Entra ID or attestation
/// connection (the SDK's own client uses the same).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the shared client.
///
/// # Errors
/// [`TransportError`] naming the CA file or the reqwest failure.
pub fn build_http_client(
    extra_ca_file: Option<&Path>,
    idle_timeout: Duration,
) -> Result<reqwest::Client, TransportError> {
    let mut builder = reqwest::Client::builder()
        .dns_resolver(Arc::new(LoopbackResolver))
        .pool_idle_timeout(idle_timeout)
        .connect_timeout(Duration::from_secs(10))
        // A peer that accepts and then never answers must not hold a
        // fetch (and its per-vault slot) forever; the SDK's own client uses
        // the same 60 s read timeout.
        .read_timeout(READ_TIMEOUT)
        .https_only(true);
    if let Some(path) = extra_ca_file {
        // std::fs::read follows a symlinked CA file (kubelet-projected
        // ConfigMaps are symlinks), which is intended.
        let pem = std::fs::read(path).map_err(|source| TransportError::ReadCa {
            path: path.display().to_string(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| TransportError::BadCa {
                path: path.display().to_string(),
            })?;
        if certs.is_empty() {
            return Err(TransportError::BadCa {
                path: path.display().to_string(),
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(TransportError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names() {
        assert!(is_localhost("kv1.vault.localhost"));
        assert!(is_localhost("LOGIN.LOCALHOST."));
        assert!(is_localhost("localhost"));
        assert!(!is_localhost("localhost.example.com"));
        assert!(!is_localhost("kv1.vault.azure.net"));
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_and_invalid_fails_fast() {
        let r = LoopbackResolver;
        let name: Name = "kv.vault.localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = r.resolve(name).await.expect("resolves").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(!addrs.is_empty());
        let name: Name = "kv.vault.invalid".parse().expect("name");
        assert!(r.resolve(name).await.is_err());
    }

    #[test]
    fn missing_ca_file_names_the_flag() {
        let err = build_http_client(
            Some(Path::new("/nonexistent/ca.pem")),
            Duration::from_secs(1),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("--extra-ca-file"));
    }
}
