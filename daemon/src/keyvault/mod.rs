//! Key Vault access through the official Azure SDK for Rust
//! (`azure_security_keyvault_secrets` 1.x, `azure_identity` 1.x): the shared
//! transport, one `SecretClient` per (vault, identity), fetching and
//! rendering of objects.
//!
//! Every client's pipeline is: the SDK's per-call policies, our
//! [`RetryPolicy`] (the SDK's own retry is off), then per try: the SDK's
//! bearer-token policy, `RecordCause` ([`LAST_CAUSE`]), [`InFlight`] (the
//! per-vault concurrency cap and request metrics), the transport.
//!
//! SEV-SNP Secure Key Release: [`AttestationClient`] (Azure Attestation, `attestation`)
//! turns evidence into a token, and [`KeyVault::release_key`] (`release`) presents it to
//! Key Vault and unwraps the released key with the runtime key from
//! [`generate_runtime_key`].

mod attestation;
pub mod convert;
mod error;
mod fetch;
mod inflight;
mod release;
mod retry;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, RetryOptions, Transport};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

pub use attestation::{
    ATTEST_API_VERSION, AttestError, AttestationClient, AttestationToken, SnpEvidence,
};
pub use error::{Cause, classify};
pub use fetch::{FetchError, FetchErrorKind, VolumeContent, object_key, render_volume};
pub use inflight::{InFlight, TOKEN_PATH_SUFFIX, operation};
pub use release::{RELEASE_ENC, ReleaseError, generate_runtime_key, unwrap_released_key};
pub use retry::{DEADLINE, RETRY_STATUSES, RetryPolicy, retry_after};
pub use transport::{
    LoopbackResolver, TransportError, VaultletHttp, build_http_client, is_localhost,
    is_permanent_transport_failure,
};

use crate::auth::{AuthError, CredentialCache, Identity, IdentityKey};
use crate::config::Config;
use crate::params::{Cloud, ObjectType, VolumeParams};
use crate::store::{CacheGauges, ObjectCache};
use crate::telemetry::Metrics;

tokio::task_local! {
    /// The last failure seen by any request of the current publish, so that a
    /// publish timeout can name its cause.
    pub static LAST_CAUSE: Arc<Mutex<Option<String>>>;
}

/// Per-try policy: records the status of failed tries into [`LAST_CAUSE`].
#[derive(Debug)]
struct RecordCause;

#[async_trait::async_trait]
impl Policy for RecordCause {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let host = request.url().host_str().unwrap_or("?").to_string();
        let set = |note: String| {
            let _ = LAST_CAUSE.try_with(|c| {
                *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
            });
        };
        // Overwritten by the outcome; stays if the answer never comes.
        set(format!("no answer yet from {host}"));
        let res = next[0].send(ctx, request, &next[1..]).await;
        let note = match &res {
            Ok(r) if !r.status().is_success() && u16::from(r.status()) != 401 => {
                Some(format!("{host} answered {}", u16::from(r.status())))
            }
            Ok(_) => None,
            Err(e) => Some(format!("{host}: {}", classify(e))),
        };
        match note {
            Some(note) => set(note),
            None => set(format!("{host} answered")),
        }
        res
    }
}

/// Key Vault access for the whole daemon.
pub struct KeyVault {
    http: reqwest::Client,
    transport: Transport,
    retry: Arc<RetryPolicy>,
    inflight: Arc<InFlight>,
    publish_timeout: std::time::Duration,
    dns_suffix: Option<String>,
    authority_host: Option<String>,
    credentials: CredentialCache,
    clients: Mutex<HashMap<(String, IdentityKey), Arc<VaultClients>>>,
    cache: ObjectCache<FetchError>,
}

impl fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault")
            .field("dns_suffix", &self.dns_suffix)
            .field("authority_host", &self.authority_host)
            .finish_non_exhaustive()
    }
}

impl KeyVault {
    /// Builds the transport from the config; requests are counted into
    /// `metrics` and capped per vault at `--keyvault-max-concurrency`.
    ///
    /// # Errors
    /// [`TransportError`] for a bad `--extra-ca-file`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, TransportError> {
        let http = build_http_client(config.extra_ca_file.as_deref(), config.http_idle_timeout)?;
        let gauges = CacheGauges {
            objects: metrics.cached_objects.clone(),
            bytes: metrics.cached_bytes.clone(),
        };
        Ok(Self {
            http: http.clone(),
            transport: Transport::new(Arc::new(VaultletHttp(http))),
            retry: Arc::new(RetryPolicy::default()),
            inflight: Arc::new(InFlight::new(metrics, config.keyvault_max_concurrency)),
            publish_timeout: config.publish_timeout,
            dns_suffix: config.keyvault_dns_suffix.clone(),
            authority_host: config.authority_host.clone(),
            credentials: CredentialCache::default(),
            clients: Mutex::new(HashMap::new()),
            cache: ObjectCache::new(gauges),
        })
    }

    /// The shared HTTP client (extra CA, `*.localhost`, idle timeout), for
    /// the daemon's other HTTPS calls (AMD KDS, attestation).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The node's object cache.
    pub fn cache(&self) -> &ObjectCache<FetchError> {
        &self.cache
    }

    /// Whether a background refresh for `identity` can authenticate with
    /// what the daemon holds (see [`CredentialCache::can_refresh`]).
    pub fn can_refresh(&self, identity: &IdentityKey) -> bool {
        self.credentials.can_refresh(identity)
    }

    /// The clients already built for (vault, identity), if any: what a
    /// refresh uses, with the newest credential kubelet handed over.
    pub fn clients_for(
        &self,
        vault_url: &str,
        identity: &IdentityKey,
    ) -> Option<Arc<VaultClients>> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .get(&(vault_url.to_string(), identity.clone()))
            .cloned()
    }

    /// `https://{keyvaultName}.{suffix}/` for a volume.
    pub fn vault_url(&self, params: &VolumeParams) -> String {
        let suffix = self
            .dns_suffix
            .as_deref()
            .unwrap_or_else(|| params.cloud.keyvault_dns_suffix());
        format!("https://{}.{}/", params.keyvault_name, suffix)
    }

    /// Entra ID authority host for a cloud (`--authority-host` wins).
    pub fn authority_host(&self, cloud: Cloud) -> String {
        self.authority_host
            .clone()
            .unwrap_or_else(|| cloud.authority_host().to_string())
    }

    fn client_options(&self, authority_host: &str) -> ClientOptions {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = authority_host.to_string();
        ClientOptions {
            transport: Some(self.transport.clone()),
            cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
            // Our RetryPolicy replaces the SDK's; the same options go to
            // the credentials, so token requests are retried by it too.
            retry: RetryOptions::none(),
            per_call_policies: vec![self.retry.clone()],
            per_try_policies: vec![Arc::new(RecordCause), self.inflight.clone()],
            ..Default::default()
        }
    }

    /// The SDK clients for (vault, identity), created once and reused so the
    /// credential's token cache and the connection pool are shared. Every
    /// call also installs the identity's newest kubelet token.
    ///
    /// # Errors
    /// [`AuthError`] when the credential or a client cannot be built.
    pub fn vault_clients(
        &self,
        vault_url: &str,
        identity: &Identity,
    ) -> Result<Arc<VaultClients>, AuthError> {
        let options = self.client_options(&identity.key.authority_host);
        let credential = self.credentials.credential(identity, &options)?;
        let key = (vault_url.to_string(), identity.key.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let sdk_err = |e: azure_core::Error| AuthError::Credential {
            client_id: identity.key.client_id.clone(),
            reason: e.to_string(),
        };
        let built = VaultClients {
            secrets: SecretClient::new(
                vault_url,
                credential.clone(),
                Some(SecretClientOptions {
                    client_options: options.clone(),
                    ..Default::default()
                }),
            )
            .map_err(sdk_err)?,
            keys: KeyClient::new(
                vault_url,
                credential.clone(),
                Some(KeyClientOptions {
                    client_options: options.clone(),
                    ..Default::default()
                }),
            )
            .map_err(sdk_err)?,
            certificates: CertificateClient::new(
                vault_url,
                credential,
                Some(CertificateClientOptions {
                    client_options: options,
                    ..Default::default()
                }),
            )
            .map_err(sdk_err)?,
            warmed: Default::default(),
        };
        let built = Arc::new(built);
        clients.insert(key, built.clone());
        Ok(built)
    }
}

/// The three data-plane clients of one (vault, identity). They share one
/// credential (so one Entra token) and the daemon's connection pool.
pub struct VaultClients {
    /// Secrets (`/secrets`), including certificate-backed secrets.
    pub secrets: SecretClient,
    /// Keys (`/keys`).
    pub keys: KeyClient,
    /// Certificates (`/certificates`).
    pub certificates: CertificateClient,
    /// Per client (secrets, keys, certificates): whether a request has
    /// completed, so the SDK has learnt the vault's challenge.
    warmed: [tokio::sync::Mutex<bool>; 3],
}

impl VaultClients {
    /// Until one request of the client for `object_type` has completed,
    /// requests go one at a time, so the SDK answers the vault's 401
    /// challenge once instead of once per concurrent request. Returns the
    /// guard for the caller that must go alone; it calls
    /// [`VaultClients::warmed`] when its request is done.
    pub async fn first_use(
        &self,
        object_type: ObjectType,
    ) -> Option<tokio::sync::MutexGuard<'_, bool>> {
        let gate = &self.warmed[match object_type {
            ObjectType::Secret => 0,
            ObjectType::Key => 1,
            ObjectType::Cert => 2,
        }];
        let guard = gate.lock().await;
        if *guard { None } else { Some(guard) }
    }

    /// Marks the client warmed (see [`VaultClients::first_use`]).
    pub fn warmed(guard: Option<tokio::sync::MutexGuard<'_, bool>>) {
        if let Some(mut g) = guard {
            *g = true;
        }
    }
}

impl fmt::Debug for VaultClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClients")
            .field("endpoint", &self.secrets.endpoint().as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::PodInfo;
    use std::time::Duration;

    fn config(suffix: Option<&str>) -> Config {
        Config {
            socket_path: "/tmp/s".into(),
            node_id: "n".into(),
            driver_name: "csi.vaultlet.dev".into(),
            kubelet_root: "/var/lib/kubelet".into(),
            state_dir: "/run/vaultlet".into(),
            backend: crate::params::Backend::Tmpfs,
            tmpfs_size: 1 << 20,
            keyvault_dns_suffix: suffix.map(str::to_string),
            authority_host: None,
            extra_ca_file: None,
            metrics_addr: None,
            http_idle_timeout: Duration::from_secs(30),
            log_format: crate::config::LogFormat::Text,
            publish_timeout: Duration::from_secs(90),
            rotation_poll_interval: Duration::from_secs(120),
            keyvault_max_concurrency: 8,
            attestation: Default::default(),
        }
    }

    fn params(cloud: Cloud) -> VolumeParams {
        VolumeParams {
            keyvault_name: "kv1".into(),
            tenant_id: "t".into(),
            cloud,
            client_id: None,
            use_vm_managed_identity: false,
            user_assigned_identity_id: None,
            objects: vec![],
            backend: None,
            tmpfs_size: None,
            attestation: None,
            pod: PodInfo {
                name: None,
                namespace: "ns".into(),
                uid: "u".into(),
                service_account_name: None,
                ephemeral: true,
            },
        }
    }

    #[test]
    fn c49_cloud_hosts() {
        let kv = KeyVault::new(&config(None), Arc::default()).expect("kv");
        assert_eq!(
            kv.vault_url(&params(Cloud::Public)),
            "https://kv1.vault.azure.net/"
        );
        assert_eq!(
            kv.vault_url(&params(Cloud::China)),
            "https://kv1.vault.azure.cn/"
        );
        assert_eq!(
            kv.vault_url(&params(Cloud::UsGovernment)),
            "https://kv1.vault.usgovcloudapi.net/"
        );
        assert_eq!(
            kv.authority_host(Cloud::China),
            "https://login.chinacloudapi.cn"
        );
        assert_eq!(
            kv.authority_host(Cloud::UsGovernment),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            kv.authority_host(Cloud::Public),
            "https://login.microsoftonline.com"
        );
    }

    #[test]
    fn c49_dns_suffix_with_port() {
        let kv = KeyVault::new(&config(Some("vault.localhost:8443")), Arc::default()).expect("kv");
        assert_eq!(
            kv.vault_url(&params(Cloud::China)),
            "https://kv1.vault.localhost:8443/"
        );
    }
}
