//! Identity selection (DESIGN §4) and one credential per identity.
//!
//! The identity a volume uses is chosen as the Azure provider does:
//! `useVMManagedIdentity` first, then workload identity (`clientID` plus the
//! kubelet token for audience `api://AzureADTokenExchange`), then a service
//! principal (`clientid`/`clientsecret` in the request's `secrets`).
//!
//! Tokens and client secrets are held in [`SecretBytes`] and never appear in
//! logs or errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::params::VolumeParams;
use crate::store::SecretBytes;

/// Audience of the kubelet-issued token used for workload identity.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// `secrets` key of a service principal's client id (nodePublishSecretRef).
pub const SP_CLIENT_ID_KEY: &str = "clientid";
/// `secrets` key of a service principal's client secret.
pub const SP_CLIENT_SECRET_KEY: &str = "clientsecret";

/// Why no credential could be chosen or built. Never holds a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// None of the identity sources is usable.
    #[error(
        "no usable identity: set useVMManagedIdentity, or clientID with a kubelet token for audience {TOKEN_EXCHANGE_AUDIENCE} (CSIDriver tokenRequests), or clientid/clientsecret in nodePublishSecretRef; {missing}"
    )]
    NoIdentity {
        /// What was missing, e.g. `clientID is set but no token for the audience was passed`.
        missing: String,
    },
    /// Node managed identity is not in this build yet.
    #[error("useVMManagedIdentity: node managed identity is not supported by this build yet")]
    ManagedIdentityNotSupported,
    /// The service-account tokens entry is not the JSON kubelet sends.
    #[error(
        "csi.storage.k8s.io/serviceAccount.tokens is not valid JSON of the form {{audience: {{token, expirationTimestamp}}}}"
    )]
    BadTokensEntry,
    /// The SDK refused to build the credential (e.g. a malformed tenant).
    #[error("building the credential for client {client_id}: {reason}")]
    Credential {
        /// Client id (not secret).
        client_id: String,
        /// The SDK's reason (it never contains the secret).
        reason: String,
    },
}

/// Which kind of identity, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// Federated kubelet token exchanged for an Entra token.
    WorkloadIdentity,
    /// Client id + client secret.
    ServicePrincipal,
}

/// What Key Vault authorises: the cache key of credentials, clients and
/// (later) fetched objects. Holds no secret: the service principal's secret
/// is represented by its SHA-256.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    /// Kind.
    pub kind: IdentityKind,
    /// Tenant id or domain.
    pub tenant_id: String,
    /// Entra client id.
    pub client_id: String,
    /// Authority host the credential talks to (`https://host[:port]`).
    pub authority_host: String,
    /// Workload identity: pod namespace.
    pub namespace: Option<String>,
    /// Workload identity: service account name.
    pub service_account: Option<String>,
    /// Service principal: SHA-256 of the client secret.
    pub secret_sha256: Option<[u8; 32]>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IdentityKind::WorkloadIdentity => write!(
                f,
                "workload identity client {} (service account {}/{})",
                self.client_id,
                self.namespace.as_deref().unwrap_or("?"),
                self.service_account.as_deref().unwrap_or("?"),
            ),
            IdentityKind::ServicePrincipal => {
                write!(f, "service principal client {}", self.client_id)
            }
        }
    }
}

/// A chosen identity with its current credential material.
#[derive(Debug)]
pub struct Identity {
    /// The cache key.
    pub key: IdentityKey,
    material: SecretBytes,
    /// When the kubelet token expires (its `expirationTimestamp`), if known.
    expires: Option<SystemTime>,
}

#[derive(Deserialize)]
struct AudienceToken {
    token: String,
    #[serde(rename = "expirationTimestamp", default)]
    expiration: Option<String>,
}

/// A kubelet-issued service-account token and its expiry.
#[derive(Debug)]
pub struct KubeletToken {
    /// The token.
    pub token: SecretBytes,
    /// Its `expirationTimestamp` (RFC 3339), when present and valid.
    pub expires: Option<SystemTime>,
}

/// Reads the kubelet token for `audience` from `secrets` first, then from
/// `volume_context` (DESIGN §4).
///
/// # Errors
/// [`AuthError::BadTokensEntry`] when the entry exists but is not valid.
pub fn kubelet_token(
    secrets: &HashMap<String, String>,
    volume_context: &HashMap<String, String>,
    audience: &str,
) -> Result<Option<KubeletToken>, AuthError> {
    for source in [secrets, volume_context] {
        let Some(raw) = source.get(csi_proto::SERVICE_ACCOUNT_TOKENS_KEY) else {
            continue;
        };
        if raw.trim().is_empty() {
            continue;
        }
        let mut parsed: HashMap<String, AudienceToken> =
            serde_json::from_str(raw).map_err(|_| AuthError::BadTokensEntry)?;
        if let Some(t) = parsed.remove(audience)
            && !t.token.is_empty()
        {
            let expires = t
                .expiration
                .as_deref()
                .and_then(|e| humantime::parse_rfc3339_weak(e).ok());
            return Ok(Some(KubeletToken {
                token: SecretBytes::from_string(t.token),
                expires,
            }));
        }
        // Zeroize tokens of other audiences before dropping them.
        for (_, t) in parsed.drain() {
            drop(SecretBytes::from_string(t.token));
        }
    }
    Ok(None)
}

/// Chooses the identity of a volume.
///
/// `authority_host` is the Entra ID host in force for this volume (cloud
/// default or `--authority-host`).
///
/// # Errors
/// [`AuthError`]; maps to FAILED_PRECONDITION except `BadTokensEntry`.
pub fn select_identity(
    params: &VolumeParams,
    secrets: &HashMap<String, String>,
    volume_context: &HashMap<String, String>,
    authority_host: &str,
) -> Result<Identity, AuthError> {
    if params.use_vm_managed_identity {
        return Err(AuthError::ManagedIdentityNotSupported);
    }
    let mut missing = Vec::new();
    if let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) {
        match kubelet_token(secrets, volume_context, TOKEN_EXCHANGE_AUDIENCE)? {
            Some(token) => {
                return Ok(Identity {
                    key: IdentityKey {
                        kind: IdentityKind::WorkloadIdentity,
                        tenant_id: params.tenant_id.clone(),
                        client_id: client_id.to_string(),
                        authority_host: authority_host.to_string(),
                        namespace: Some(params.pod.namespace.clone()),
                        service_account: params.pod.service_account_name.clone(),
                        secret_sha256: None,
                    },
                    material: token.token,
                    expires: token.expires,
                });
            }
            None => missing.push(format!(
                "clientID is set but kubelet passed no token for audience {TOKEN_EXCHANGE_AUDIENCE}"
            )),
        }
    } else {
        missing.push("clientID is not set".to_string());
    }
    let id = secrets.get(SP_CLIENT_ID_KEY).filter(|s| !s.is_empty());
    let secret = secrets.get(SP_CLIENT_SECRET_KEY).filter(|s| !s.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            return Ok(Identity {
                key: IdentityKey {
                    kind: IdentityKind::ServicePrincipal,
                    tenant_id: params.tenant_id.clone(),
                    client_id: id.clone(),
                    authority_host: authority_host.to_string(),
                    namespace: None,
                    service_account: None,
                    secret_sha256: Some(digest),
                },
                material: SecretBytes::copy_from(secret.as_bytes()),
                expires: None,
            });
        }
        (Some(_), None) => missing.push("secrets has clientid but no clientsecret".into()),
        (None, Some(_)) => missing.push("secrets has clientsecret but no clientid".into()),
        (None, None) => missing.push("secrets has no clientid/clientsecret".into()),
    }
    Err(AuthError::NoIdentity {
        missing: missing.join("; "),
    })
}

/// The current kubelet token of a workload identity; replaced on every
/// publish so refreshes use the newest one.
#[derive(Clone)]
struct TokenSlot(Arc<RwLock<(SecretBytes, Option<SystemTime>)>>);

impl fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSlot([REDACTED])")
    }
}

#[async_trait::async_trait]
impl ClientAssertion for TokenSlot {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        // The SDK wants a String; it lives only for the token request.
        String::from_utf8(guard.0.expose().to_vec()).map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "kubelet token is not UTF-8",
            )
        })
    }
}

/// Wraps the SDK credential to remember when its Entra token expires, so a
/// refresh can tell whether it could still authenticate.
#[derive(Debug)]
struct Tracked {
    inner: Arc<dyn TokenCredential>,
    expires: Mutex<Option<SystemTime>>,
}

#[async_trait::async_trait]
impl TokenCredential for Tracked {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = self.inner.get_token(scopes, options).await?;
        *self.expires.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.expires_on.into());
        Ok(token)
    }
}

/// How long before its expiry an Entra token is no longer counted on (the
/// SDK renews tokens about this long before they expire).
const ENTRA_RENEW_MARGIN: Duration = Duration::from_secs(300);

struct Entry {
    credential: Arc<Tracked>,
    slot: Option<TokenSlot>,
}

/// One SDK credential per identity. The SDK credential caches its Entra
/// token until shortly before expiry, so sharing it shares the token.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<IdentityKey, Entry>>,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("CredentialCache")
            .field("identities", &n)
            .finish()
    }
}

impl CredentialCache {
    /// Returns the credential of `identity`, creating it on first use, and
    /// installs the identity's newest kubelet token.
    ///
    /// # Errors
    /// [`AuthError::Credential`] when the SDK rejects the parameters.
    pub fn credential(
        &self,
        identity: &Identity,
        client_options: &ClientOptions,
    ) -> Result<Arc<dyn TokenCredential>, AuthError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get(&identity.key) {
            if let Some(slot) = &entry.slot {
                let mut cur = slot.0.write().unwrap_or_else(|p| p.into_inner());
                if cur.0.expose() != identity.material.expose() {
                    *cur = (identity.material.clone(), identity.expires);
                }
            }
            return Ok(entry.credential.clone());
        }
        let key = &identity.key;
        let err = |e: azure_core::Error| AuthError::Credential {
            client_id: key.client_id.clone(),
            reason: e.to_string(),
        };
        let entry: (Arc<dyn TokenCredential>, Option<TokenSlot>) = match key.kind {
            IdentityKind::WorkloadIdentity => {
                let slot = TokenSlot(Arc::new(RwLock::new((
                    identity.material.clone(),
                    identity.expires,
                ))));
                let credential = ClientAssertionCredential::new(
                    key.tenant_id.clone(),
                    key.client_id.clone(),
                    slot.clone(),
                    Some(ClientAssertionCredentialOptions {
                        client_options: client_options.clone(),
                    }),
                )
                .map_err(err)?;
                (credential, Some(slot))
            }
            IdentityKind::ServicePrincipal => {
                let secret =
                    String::from_utf8(identity.material.expose().to_vec()).map_err(|_| {
                        AuthError::Credential {
                            client_id: key.client_id.clone(),
                            reason: "clientsecret is not UTF-8".into(),
                        }
                    })?;
                let credential = ClientSecretCredential::new(
                    &key.tenant_id,
                    key.client_id.clone(),
                    secret.into(),
                    Some(ClientSecretCredentialOptions {
                        client_options: client_options.clone(),
                    }),
                )
                .map_err(err)?;
                (credential, None)
            }
        };
        let entry = Entry {
            credential: Arc::new(Tracked {
                inner: entry.0,
                expires: Mutex::new(None),
            }),
            slot: entry.1,
        };
        let credential = entry.credential.clone();
        entries.insert(key.clone(), entry);
        Ok(credential)
    }

    /// Whether a background refresh for `identity` could authenticate
    /// without anything new from kubelet: a service principal always can;
    /// a workload identity while its Entra token is still valid or its
    /// kubelet token has not expired. The daemon never asks for tokens
    /// itself (DESIGN §4).
    pub fn can_refresh(&self, identity: &IdentityKey) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get(identity) else {
            return false;
        };
        let Some(slot) = &entry.slot else {
            return true;
        };
        let now = SystemTime::now();
        let entra_valid = entry
            .credential
            .expires
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|e| e > now + ENTRA_RENEW_MARGIN);
        let kubelet_valid = slot
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .is_none_or(|e| e > now);
        entra_valid || kubelet_valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Cloud, PodInfo};

    fn params(client_id: Option<&str>) -> VolumeParams {
        VolumeParams {
            keyvault_name: "kv1".into(),
            tenant_id: "tenant1".into(),
            cloud: Cloud::Public,
            client_id: client_id.map(str::to_string),
            use_vm_managed_identity: false,
            user_assigned_identity_id: None,
            objects: vec![],
            backend: None,
            tmpfs_size: None,
            attestation: None,
            pod: PodInfo {
                name: Some("p".into()),
                namespace: "ns1".into(),
                uid: "u1".into(),
                service_account_name: Some("sa1".into()),
                ephemeral: true,
            },
        }
    }

    fn tokens(token: &str) -> HashMap<String, String> {
        [(
            csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.to_string(),
            format!(r#"{{"{TOKEN_EXCHANGE_AUDIENCE}":{{"token":"{token}","expirationTimestamp":"2030-01-01T00:00:00Z"}}}}"#),
        )]
        .into()
    }

    fn tokens_expiring(token: &str, at: &str) -> HashMap<String, String> {
        [(
            csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.to_string(),
            format!(r#"{{"{TOKEN_EXCHANGE_AUDIENCE}":{{"token":"{token}","expirationTimestamp":"{at}"}}}}"#),
        )]
        .into()
    }

    /// A background refresh is possible with an unexpired kubelet token, or
    /// with a service principal; with an expired kubelet token and no Entra
    /// token held it is not (the refresh is skipped, files kept).
    #[test]
    fn can_refresh_needs_a_valid_entra_or_kubelet_token() {
        let cache = CredentialCache::default();
        let options = ClientOptions::default();
        let p = params(Some("c1"));
        let id = select_identity(
            &p,
            &tokens_expiring("t1", "2000-01-01T00:00:00Z"),
            &HashMap::new(),
            "https://login.localhost",
        )
        .expect("identity");
        assert!(!cache.can_refresh(&id.key), "unknown identity");
        cache.credential(&id, &options).expect("credential");
        assert!(
            !cache.can_refresh(&id.key),
            "expired kubelet token, no Entra token"
        );
        // Kubelet hands over a fresh token (a republish): refreshes may run.
        let fresh = select_identity(
            &p,
            &tokens_expiring("t2", "2999-01-01T00:00:00Z"),
            &HashMap::new(),
            "https://login.localhost",
        )
        .expect("identity");
        cache.credential(&fresh, &options).expect("credential");
        assert!(cache.can_refresh(&id.key));
        // An Entra token valid beyond the renewal margin also suffices.
        let expired_again = select_identity(
            &p,
            &tokens_expiring("t3", "2000-01-01T00:00:00Z"),
            &HashMap::new(),
            "https://login.localhost",
        )
        .expect("identity");
        cache
            .credential(&expired_again, &options)
            .expect("credential");
        assert!(!cache.can_refresh(&id.key));
        {
            let entries = cache.entries.lock().expect("entries");
            let entry = entries.get(&id.key).expect("entry");
            *entry.credential.expires.lock().expect("expires") =
                Some(SystemTime::now() + Duration::from_secs(3600));
        }
        assert!(cache.can_refresh(&id.key));
        // A service principal never depends on kubelet.
        let secrets: HashMap<String, String> = [
            ("clientid".to_string(), "sp1".to_string()),
            ("clientsecret".to_string(), "s3cr3t".to_string()),
        ]
        .into();
        let sp = select_identity(&params(None), &secrets, &HashMap::new(), "h").expect("sp");
        cache.credential(&sp, &options).expect("credential");
        assert!(cache.can_refresh(&sp.key));
    }

    #[test]
    fn workload_identity_prefers_token_from_secrets() {
        let id = select_identity(
            &params(Some("c1")),
            &tokens("from-secrets"),
            &tokens("from-context"),
            "https://login.localhost",
        )
        .expect("identity");
        assert_eq!(id.key.kind, IdentityKind::WorkloadIdentity);
        assert_eq!(id.material.expose(), b"from-secrets");
        assert_eq!(id.key.namespace.as_deref(), Some("ns1"));
    }

    #[test]
    fn workload_identity_falls_back_to_volume_context() {
        let id = select_identity(&params(Some("c1")), &HashMap::new(), &tokens("ctx"), "h")
            .expect("identity");
        assert_eq!(id.material.expose(), b"ctx");
    }

    #[test]
    fn service_principal_from_secrets() {
        let secrets: HashMap<String, String> = [
            ("clientid".to_string(), "sp1".to_string()),
            ("clientsecret".to_string(), "s3cr3t-canary".to_string()),
        ]
        .into();
        let id = select_identity(&params(None), &secrets, &HashMap::new(), "h").expect("identity");
        assert_eq!(id.key.kind, IdentityKind::ServicePrincipal);
        assert_eq!(id.key.client_id, "sp1");
        let shown = format!("{id:?} {}", id.key);
        assert!(!shown.contains("s3cr3t-canary"), "{shown}");
    }

    #[test]
    fn no_identity_says_what_is_missing() {
        let err = select_identity(&params(Some("c1")), &HashMap::new(), &HashMap::new(), "h")
            .expect_err("none");
        let msg = err.to_string();
        assert!(matches!(err, AuthError::NoIdentity { .. }));
        assert!(msg.contains("no token for audience"), "{msg}");
        assert!(msg.contains("clientid"), "{msg}");
    }

    #[test]
    fn managed_identity_is_not_in_this_build() {
        let mut p = params(None);
        p.use_vm_managed_identity = true;
        let err = select_identity(&p, &HashMap::new(), &HashMap::new(), "h").expect_err("mi");
        assert!(matches!(err, AuthError::ManagedIdentityNotSupported));
    }

    #[test]
    fn malformed_tokens_entry_does_not_echo_it() {
        let ctx: HashMap<String, String> = [(
            csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.to_string(),
            "not-json-canary".to_string(),
        )]
        .into();
        let err = select_identity(&params(Some("c")), &HashMap::new(), &ctx, "h").expect_err("bad");
        assert!(!err.to_string().contains("canary"));
    }
}
