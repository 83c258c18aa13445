//! The emulator's in-memory world: clients, vaults, secret versions, issued tokens, request
//! counters and injected faults. Keys and certificates, and their [`State`] methods, live in
//! `objects`.
//!
//! Everything lives behind one mutex that is never held across an `.await`. The admin API and
//! the in-process [`State`] methods are two doors onto the same operations. Nothing here is
//! persisted, and the `Debug` output of every type leaves out secret values, client secrets,
//! federated tokens and access tokens.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::objects::{CertificateSeed, KeySeed, StoredCert, StoredKey};

/// Lifetime of an issued access token, as reported in `expires_in`.
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 3599;

/// Longest secret name Key Vault accepts.
const MAX_SECRET_NAME: usize = 127;

/// Longest vault name that still fits in one DNS label.
const MAX_VAULT_NAME: usize = 63;

/// Errors of the [`State`] operations. Messages name vaults, secrets and versions, never values.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The vault has not been added.
    #[error("vault '{0}' not found")]
    UnknownVault(String),
    /// The vault has no secret of that name.
    #[error("secret '{name}' not found in vault '{vault}'")]
    UnknownSecret {
        /// Vault name as requested.
        vault: String,
        /// Secret name as requested.
        name: String,
    },
    /// The secret has no version with that id.
    #[error("version '{version}' of secret '{name}' not found in vault '{vault}'")]
    UnknownVersion {
        /// Vault name as requested.
        vault: String,
        /// Secret name as requested.
        name: String,
        /// Version id as requested.
        version: String,
    },
    /// A secret name that Key Vault would reject (1–127 of `[0-9A-Za-z-]`).
    #[error("invalid secret name '{0}': expected 1-127 characters of [0-9A-Za-z-]")]
    InvalidSecretName(String),
    /// A vault name that cannot be the first DNS label of `<name>.vault.localhost`.
    #[error("invalid vault name '{0}': expected 1-63 characters of [0-9A-Za-z-]")]
    InvalidVaultName(String),
    /// A client spec without a client id.
    #[error("client id must not be empty")]
    EmptyClientId,
    /// A key or certificate name that Key Vault would reject (1–127 of `[0-9A-Za-z-]`).
    #[error("invalid {kind} name '{name}': expected 1-127 characters of [0-9A-Za-z-]")]
    InvalidName {
        /// `key` or `certificate`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// The vault has no key of that name, or the key no such version.
    #[error("key '{name}'{} not found in vault '{vault}'", version_suffix(.version.as_deref()))]
    UnknownKey {
        /// Vault name as requested.
        vault: String,
        /// Key name as requested.
        name: String,
        /// Version id as requested, if one was.
        version: Option<String>,
    },
    /// The vault has no certificate of that name, or the certificate no such version.
    #[error("certificate '{name}'{} not found in vault '{vault}'", version_suffix(.version.as_deref()))]
    UnknownCertificate {
        /// Vault name as requested.
        vault: String,
        /// Certificate name as requested.
        name: String,
        /// Version id as requested, if one was.
        version: Option<String>,
    },
    /// A key type, size or curve that cannot be created, or a key that cannot be imported.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Certificate content that cannot be imported. The message never quotes the content.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The name is taken by an object of another kind: a certificate's secret or key cannot be
    /// set directly, and a certificate cannot take over a plain secret or key.
    #[error("{0}")]
    Conflict(String),
}

fn version_suffix(version: Option<&str>) -> String {
    version
        .map(|v| format!(" version '{v}'"))
        .unwrap_or_default()
}

/// An Entra ID application (or managed identity) the token endpoint knows.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The application (client) id, compared case-insensitively.
    #[serde(alias = "clientId")]
    pub client_id: String,
    /// The tenant the client lives in; `None` accepts any tenant in the token URL.
    #[serde(default, alias = "tenantId")]
    pub tenant_id: Option<String>,
    /// The client secret accepted for `client_secret`; `None` accepts none.
    #[serde(default)]
    pub secret: Option<String>,
    /// Client assertions (e.g. kubelet service-account tokens) accepted for this client.
    /// Empty means no assertion is accepted.
    #[serde(default, alias = "federatedTokens")]
    pub federated_tokens: Vec<String>,
}

impl fmt::Debug for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpec")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("federated_tokens", &self.federated_tokens.len())
            .finish()
    }
}

/// One version of a secret, as stored by `set_secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// The secret value, returned verbatim by GET.
    pub value: String,
    /// Optional `contentType` (e.g. `application/x-pem-file`).
    #[serde(default, alias = "contentType")]
    pub content_type: Option<String>,
    /// Whether this version can be read; `true` unless given.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Tags returned with the secret.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Creation time in Unix seconds; now when `None`. `updated` is set to the same value.
    #[serde(default)]
    pub created: Option<i64>,
}

fn default_true() -> bool {
    true
}

impl Default for SecretSpec {
    fn default() -> Self {
        Self {
            value: String::new(),
            content_type: None,
            enabled: true,
            tags: BTreeMap::new(),
            created: None,
        }
    }
}

impl SecretSpec {
    /// An enabled version holding `value`, with no content type and no tags.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec")
            .field("value", &"[REDACTED]")
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("tags", &self.tags)
            .field("created", &self.created)
            .finish()
    }
}

/// Initial contents: the JSON accepted by `--seed FILE`, `POST /admin/seed` and
/// [`EmulatorConfig::seed`](crate::EmulatorConfig::seed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Clients known to the token endpoint.
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
    /// Vaults with their access lists and secrets.
    #[serde(default)]
    pub vaults: Vec<VaultSeed>,
}

impl Seed {
    /// Parses seed JSON. The error gives the position and kind of the problem but never
    /// quotes the input, which holds secret values.
    pub fn from_json(bytes: &[u8]) -> Result<Seed, SeedParseError> {
        serde_json::from_slice(bytes).map_err(|err| SeedParseError {
            line: err.line(),
            column: err.column(),
            kind: crate::respond::json_error_kind(&err),
        })
    }
}

/// A seed that is not valid JSON or does not match the schema.
#[derive(Debug, thiserror::Error)]
#[error("invalid seed JSON at line {line} column {column}: {kind}")]
pub struct SeedParseError {
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// What went wrong, without quoting the input.
    pub kind: &'static str,
}

/// One vault of a [`Seed`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSeed {
    /// Vault name: the first DNS label of `<name>.vault.localhost`.
    pub name: String,
    /// Client ids allowed every secret operation on this vault.
    #[serde(default, alias = "allowedClients")]
    pub allowed_clients: Vec<String>,
    /// Secrets with their versions.
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
    /// Keys with their versions, generated when the seed is applied.
    #[serde(default)]
    pub keys: Vec<KeySeed>,
    /// Certificates with their versions, imported when the seed is applied.
    #[serde(default)]
    pub certificates: Vec<CertificateSeed>,
}

/// One secret of a [`VaultSeed`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSeed {
    /// Secret name.
    pub name: String,
    /// Versions, oldest first; the last one is the current version.
    #[serde(default)]
    pub versions: Vec<SecretSpec>,
}

/// Request counters, as returned by `GET /admin/counters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Key Vault GETs of an object or its version list, keyed `"<vault>/secrets/<name>"`,
    /// `"<vault>/keys/<name>"` or `"<vault>/certificates/<name>"`. Counted when the request carried an `Authorization` header or was answered by a fault;
    /// the SDK's bare challenge probe is not counted here.
    pub per_object: BTreeMap<String, u64>,
    /// Key Vault requests per client id, for requests whose bearer token the emulator issued.
    pub per_client: BTreeMap<String, u64>,
    /// Requests to the token endpoint, whatever their outcome.
    pub token_requests: u64,
    /// Key Vault requests answered with the bare 401 challenge because they
    /// carried no `Authorization` header (the SDK's first request per client).
    pub challenges: u64,
    /// Key Vault requests that reached a known vault, whatever their outcome.
    pub total: u64,
    /// `POST /attest/SevSnpVm` requests that were answered (accepted or rejected).
    #[serde(default)]
    pub attestations: u64,
    /// Key Vault `POST /keys/{name}[/{version}]/release` requests that reached a known vault
    /// and were authenticated, whatever their outcome.
    #[serde(default)]
    pub releases: u64,
}

/// A fault to inject into the next `count` matching requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Matched, ASCII case-insensitively, against the start of the request path
    /// (e.g. `/secrets/s1`). `/` matches every request, token requests included.
    pub path_prefix: String,
    /// Only requests to this vault match; `None` matches any host (and token requests).
    #[serde(default)]
    pub vault: Option<String>,
    /// Status to answer (429, 5xx, …); 0 means no status: delay, then handle normally.
    #[serde(default)]
    pub status: u16,
    /// `Retry-After` header value in seconds, sent with the status.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Delay before answering (or before normal handling).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// How many matching requests this fault applies to.
    pub count: u32,
}

impl Fault {
    fn matches(&self, path: &str, vault: Option<&str>) -> bool {
        let prefix_ok = path
            .get(..self.path_prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(&self.path_prefix));
        let vault_ok = match (&self.vault, vault) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        self.count > 0 && prefix_ok && vault_ok
    }
}

/// One stored version.
#[derive(Clone)]
pub(crate) struct Version {
    pub(crate) id: String,
    pub(crate) value: String,
    pub(crate) content_type: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

/// A secret: its name as first set and its versions, oldest first.
pub(crate) struct Secret {
    pub(crate) name: String,
    /// Set for the secret backing a certificate: its versions are the certificate's.
    pub(crate) managed: bool,
    pub(crate) versions: Vec<Version>,
}

impl Secret {
    /// The newest set version.
    pub(crate) fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The version with this id, compared case-insensitively.
    pub(crate) fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id))
    }
}

/// A vault: its name, access list, and secrets, keys and certificates keyed by lowercase
/// name.
pub(crate) struct Vault {
    pub(crate) name: String,
    pub(crate) allowed_clients: Vec<String>,
    pub(crate) secrets: BTreeMap<String, Secret>,
    pub(crate) keys: BTreeMap<String, StoredKey>,
    pub(crate) certificates: BTreeMap<String, StoredCert>,
}

impl Vault {
    pub(crate) fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn key(&self, name: &str) -> Option<&StoredKey> {
        self.keys.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn certificate(&self, name: &str) -> Option<&StoredCert> {
        self.certificates.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn allows(&self, client_id: &str) -> bool {
        self.allowed_clients
            .iter()
            .any(|c| c.eq_ignore_ascii_case(client_id))
    }
}

/// An access token the token endpoint issued.
#[derive(Clone)]
pub(crate) struct IssuedToken {
    /// Client id as registered.
    pub(crate) client_id: String,
    /// Tenant from the token URL.
    pub(crate) tenant: String,
    /// Resource of the requested scope (`scope` without `/.default` and trailing `/`).
    pub(crate) resource: String,
    pub(crate) expires_at: Instant,
}

/// Everything behind the [`State`] mutex.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) clients: BTreeMap<String, ClientSpec>,
    pub(crate) vaults: BTreeMap<String, Vault>,
    pub(crate) tokens: HashMap<String, IssuedToken>,
    pub(crate) counters: Counters,
    pub(crate) faults: Vec<Fault>,
    pub(crate) last_assertions: HashMap<String, String>,
    pub(crate) attestation: crate::attestation::AttestConfig,
}

impl Inner {
    pub(crate) fn client(&self, client_id: &str) -> Option<&ClientSpec> {
        self.clients.get(&client_id.to_ascii_lowercase())
    }

    pub(crate) fn vault(&self, name: &str) -> Option<&Vault> {
        self.vaults.get(&name.to_ascii_lowercase())
    }

    /// Consumes one use of the first fault matching the request, if any.
    pub(crate) fn take_fault(&mut self, path: &str, vault: Option<&str>) -> Option<Fault> {
        let index = self.faults.iter().position(|f| f.matches(path, vault))?;
        let fault = self.faults.get_mut(index)?;
        fault.count -= 1;
        let taken = fault.clone();
        if taken.count == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }

    /// The token, if the emulator issued it and it has not expired.
    pub(crate) fn token(&self, token: &str) -> Option<&IssuedToken> {
        self.tokens
            .get(token)
            .filter(|t| t.expires_at > Instant::now())
    }

    /// The tenant named in a vault's challenge: that of the first allowed client that has
    /// one, else `common`.
    pub(crate) fn challenge_tenant(&self, vault: &Vault) -> String {
        vault
            .allowed_clients
            .iter()
            .filter_map(|c| self.client(c))
            .find_map(|c| c.tenant_id.clone())
            .unwrap_or_else(|| "common".to_owned())
    }
}

/// The emulator's shared state. Cheap to share as `Arc<State>`; every method takes `&self`.
pub struct State {
    inner: Mutex<Inner>,
    /// The attestation and key-release signing key, generated on first use.
    signer: std::sync::OnceLock<std::sync::Arc<crate::attestation::Signer>>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("State")
            .field("clients", &inner.clients.len())
            .field("vaults", &inner.vaults.len())
            .field("tokens", &inner.tokens.len())
            .field("faults", &inner.faults.len())
            .finish()
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// An empty world: no clients, no vaults.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            signer: std::sync::OnceLock::new(),
        }
    }

    /// Locks the state. A panic while locked cannot leave it half-updated in a way that
    /// matters to a test server, so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The attestation signing key, generated on first use (two racing first uses may both
    /// generate; one wins and is kept).
    pub(crate) fn attestation_signer(
        &self,
    ) -> Result<std::sync::Arc<crate::attestation::Signer>, String> {
        if let Some(signer) = self.signer.get() {
            return Ok(std::sync::Arc::clone(signer));
        }
        let fresh = std::sync::Arc::new(crate::attestation::Signer::generate()?);
        Ok(std::sync::Arc::clone(self.signer.get_or_init(|| fresh)))
    }

    /// Adds a client to the token endpoint, replacing any client with the same id.
    pub fn add_client(&self, spec: ClientSpec) {
        if spec.client_id.is_empty() {
            tracing::warn!("ignoring client with an empty client id");
            return;
        }
        tracing::debug!(client_id = %spec.client_id, "client added");
        self.lock()
            .clients
            .insert(spec.client_id.to_ascii_lowercase(), spec);
    }

    /// Adds a vault reachable as `https://<name>.vault.localhost:PORT/`. For an existing vault
    /// (names are case-insensitive) only the access list is replaced; its secrets stay.
    ///
    /// A name that cannot be a DNS label (see [`State::try_add_vault`]) is logged and ignored.
    pub fn add_vault(&self, name: &str, allowed_client_ids: Vec<String>) {
        if let Err(err) = self.try_add_vault(name, allowed_client_ids) {
            tracing::warn!(error = %err, "vault not added");
        }
    }

    /// Like [`State::add_vault`], but reports an invalid name.
    pub fn try_add_vault(
        &self,
        name: &str,
        allowed_client_ids: Vec<String>,
    ) -> Result<(), StateError> {
        if !valid_vault_name(name) {
            return Err(StateError::InvalidVaultName(name.to_owned()));
        }
        let mut inner = self.lock();
        match inner.vaults.get_mut(&name.to_ascii_lowercase()) {
            Some(vault) => vault.allowed_clients = allowed_client_ids,
            None => {
                inner.vaults.insert(
                    name.to_ascii_lowercase(),
                    Vault {
                        name: name.to_owned(),
                        allowed_clients: allowed_client_ids,
                        secrets: BTreeMap::new(),
                        keys: BTreeMap::new(),
                        certificates: BTreeMap::new(),
                    },
                );
            }
        }
        tracing::debug!(vault = %name, "vault added");
        Ok(())
    }

    /// Sets a new version of a secret, which becomes its current version, and returns the new
    /// version id (32 lowercase hex digits).
    pub fn set_secret(
        &self,
        vault: &str,
        name: &str,
        spec: SecretSpec,
    ) -> Result<String, StateError> {
        if !valid_secret_name(name) {
            return Err(StateError::InvalidSecretName(name.to_owned()));
        }
        let mut inner = self.lock();
        let stored_vault = inner
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let id = push_version(stored_vault, name, spec)?;
        tracing::debug!(vault = %vault, secret = %name, version = %id, "secret version set");
        Ok(id)
    }

    /// Enables or disables one version of a secret.
    pub fn set_secret_enabled(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        let stored_vault = inner
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let secret = stored_vault
            .secrets
            .get_mut(&name.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownSecret {
                vault: vault.to_owned(),
                name: name.to_owned(),
            })?;
        let stored = secret
            .versions
            .iter_mut()
            .find(|v| v.id.eq_ignore_ascii_case(version))
            .ok_or_else(|| StateError::UnknownVersion {
                vault: vault.to_owned(),
                name: name.to_owned(),
                version: version.to_owned(),
            })?;
        stored.enabled = enabled;
        stored.updated = now_secs().max(stored.created);
        tracing::debug!(vault = %vault, secret = %name, version = %version, enabled, "secret version updated");
        Ok(())
    }

    /// Ids of a secret's versions, oldest first (the last is current).
    pub fn secret_versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StateError> {
        let inner = self.lock();
        let stored_vault = inner
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let secret = stored_vault
            .secret(name)
            .ok_or_else(|| StateError::UnknownSecret {
                vault: vault.to_owned(),
                name: name.to_owned(),
            })?;
        Ok(secret.versions.iter().map(|v| v.id.clone()).collect())
    }

    /// Adds the clients, vaults, secrets, keys and certificates of a seed, in order. Stops at
    /// the first error.
    pub fn apply_seed(&self, seed: Seed) -> Result<(), StateError> {
        for client in seed.clients {
            if client.client_id.is_empty() {
                return Err(StateError::EmptyClientId);
            }
            self.add_client(client);
        }
        for vault in seed.vaults {
            self.try_add_vault(&vault.name, vault.allowed_clients)?;
            for secret in vault.secrets {
                if !valid_secret_name(&secret.name) {
                    return Err(StateError::InvalidSecretName(secret.name));
                }
                for version in secret.versions {
                    self.set_secret(&vault.name, &secret.name, version)?;
                }
            }
            for key in vault.keys {
                if !valid_secret_name(&key.name) {
                    return Err(StateError::InvalidName {
                        kind: "key",
                        name: key.name,
                    });
                }
                for version in key.versions {
                    self.create_key(&vault.name, &key.name, version)?;
                }
            }
            for cert in vault.certificates {
                if !valid_secret_name(&cert.name) {
                    return Err(StateError::InvalidName {
                        kind: "certificate",
                        name: cert.name,
                    });
                }
                for version in cert.versions {
                    self.import_certificate(&vault.name, &cert.name, version)?;
                }
            }
        }
        Ok(())
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.lock().counters = Counters::default();
    }

    /// Queues a fault. Faults are tried in the order they were injected; the first matching
    /// one with uses left is consumed.
    pub fn inject_fault(&self, fault: Fault) {
        tracing::debug!(
            path_prefix = %fault.path_prefix,
            vault = ?fault.vault,
            status = fault.status,
            count = fault.count,
            "fault injected"
        );
        if fault.count > 0 {
            self.lock().faults.push(fault);
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The last client assertion presented for this client id (whether accepted or not).
    /// Kept in memory only and never exposed over HTTP.
    pub fn last_assertion(&self, client_id: &str) -> Option<String> {
        self.lock()
            .last_assertions
            .get(&client_id.to_ascii_lowercase())
            .cloned()
    }

    /// Forgets every issued access token, so the next Key Vault request with one gets 401.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Stores a freshly issued token and drops expired ones.
    pub(crate) fn issue_token(
        &self,
        client_id: &str,
        tenant: &str,
        resource: &str,
    ) -> (String, u64) {
        let token = new_access_token();
        let now = Instant::now();
        let mut inner = self.lock();
        inner.tokens.retain(|_, t| t.expires_at > now);
        inner.tokens.insert(
            token.clone(),
            IssuedToken {
                client_id: client_id.to_owned(),
                tenant: tenant.to_owned(),
                resource: resource.to_owned(),
                expires_at: now + Duration::from_secs(TOKEN_LIFETIME_SECS),
            },
        );
        (token, TOKEN_LIFETIME_SECS)
    }
}

/// Appends a version to a secret of `vault` (creating the secret) and returns its new id.
/// The secret of a certificate cannot be set this way.
pub(crate) fn push_version(
    vault: &mut Vault,
    name: &str,
    spec: SecretSpec,
) -> Result<String, StateError> {
    if vault.secret(name).is_some_and(|s| s.managed) {
        return Err(StateError::Conflict(format!(
            "secret '{name}' in vault '{}' backs a certificate; import a new certificate version instead",
            vault.name
        )));
    }
    let secret = vault
        .secrets
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Secret {
            name: name.to_owned(),
            managed: false,
            versions: Vec::new(),
        });
    let id = loop {
        let candidate = new_version_id();
        if secret.version(&candidate).is_none() {
            break candidate;
        }
    };
    let created = spec.created.unwrap_or_else(now_secs);
    secret.versions.push(Version {
        id: id.clone(),
        value: spec.value,
        content_type: spec.content_type,
        enabled: spec.enabled,
        tags: spec.tags,
        created,
        updated: created,
    });
    Ok(id)
}

/// Key Vault secret names: 1–127 of `[0-9A-Za-z-]`.
pub(crate) fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Vault names usable as a DNS label.
pub(crate) fn valid_vault_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_VAULT_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn new_version_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn new_access_token() -> String {
    format!("kve.{}", hex::encode(rand::random::<[u8; 32]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> State {
        let state = State::new();
        state.add_vault("kv1", vec!["c1".to_owned()]);
        state
    }

    #[test]
    fn version_ids_are_32_lowercase_hex() {
        let state = world();
        let id = state
            .set_secret("kv1", "s1", SecretSpec::new("v"))
            .expect("set");
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn latest_is_the_last_version_set() {
        let state = world();
        state
            .set_secret("kv1", "s1", SecretSpec::new("first"))
            .expect("set");
        let second = state
            .set_secret("KV1", "S1", SecretSpec::new("second"))
            .expect("set");
        let inner = state.lock();
        let secret = inner
            .vault("kv1")
            .and_then(|v| v.secret("s1"))
            .expect("secret");
        assert_eq!(secret.versions.len(), 2);
        assert_eq!(
            secret.latest().map(|v| v.id.as_str()),
            Some(second.as_str())
        );
        assert_eq!(secret.latest().map(|v| v.value.as_str()), Some("second"));
        assert_eq!(secret.name, "s1");
    }

    #[test]
    fn set_secret_on_unknown_vault_fails() {
        let state = world();
        let err = state
            .set_secret("nope", "s1", SecretSpec::new("v"))
            .expect_err("unknown vault");
        assert!(matches!(err, StateError::UnknownVault(ref v) if v == "nope"));
    }

    #[test]
    fn invalid_secret_names_are_refused() {
        let state = world();
        for name in ["", "a/b", "a_b", &"x".repeat(128)] {
            assert!(
                matches!(
                    state.set_secret("kv1", name, SecretSpec::new("v")),
                    Err(StateError::InvalidSecretName(_))
                ),
                "{name:?} accepted"
            );
        }
        assert!(valid_secret_name(&"x".repeat(127)));
    }

    #[test]
    fn invalid_vault_names_are_refused() {
        let state = State::new();
        assert!(state.try_add_vault("a.b", vec![]).is_err());
        assert!(state.try_add_vault("", vec![]).is_err());
        assert!(state.try_add_vault("kv-1", vec![]).is_ok());
    }

    #[test]
    fn set_secret_enabled_reports_what_is_missing() {
        let state = world();
        let v = state
            .set_secret("kv1", "s1", SecretSpec::new("v"))
            .expect("set");
        assert!(matches!(
            state.set_secret_enabled("kv1", "s2", &v, false),
            Err(StateError::UnknownSecret { .. })
        ));
        assert!(matches!(
            state.set_secret_enabled("kv1", "s1", "00", false),
            Err(StateError::UnknownVersion { .. })
        ));
        state
            .set_secret_enabled("kv1", "s1", &v.to_ascii_uppercase(), false)
            .expect("disable");
        let inner = state.lock();
        let enabled = inner
            .vault("kv1")
            .and_then(|x| x.secret("s1"))
            .and_then(|s| s.latest())
            .map(|v| v.enabled);
        assert_eq!(enabled, Some(false));
    }

    #[test]
    fn faults_are_consumed_in_order_and_by_count() {
        let state = world();
        state.inject_fault(Fault {
            path_prefix: "/secrets/s1".into(),
            vault: Some("KV1".into()),
            status: 429,
            count: 2,
            ..Fault::default()
        });
        state.inject_fault(Fault {
            path_prefix: "/".into(),
            status: 503,
            count: 1,
            ..Fault::default()
        });
        let mut inner = state.lock();
        let first = inner.take_fault("/SECRETS/s1/", Some("kv1"));
        assert_eq!(first.map(|f| f.status), Some(429));
        assert_eq!(
            inner
                .take_fault("/secrets/s2", Some("kv1"))
                .map(|f| f.status),
            Some(503)
        );
        assert!(inner.take_fault("/secrets/s2", Some("kv1")).is_none());
        assert!(inner.take_fault("/secrets/s1", Some("kv2")).is_none());
        assert_eq!(
            inner
                .take_fault("/secrets/s1", Some("kv1"))
                .map(|f| f.status),
            Some(429)
        );
        assert!(inner.take_fault("/secrets/s1", Some("kv1")).is_none());
        assert!(inner.faults.is_empty());
    }

    #[test]
    fn debug_output_leaks_no_credentials_or_values() {
        let client = ClientSpec {
            client_id: "c1".into(),
            tenant_id: None,
            secret: Some("sp-secret-value".into()),
            federated_tokens: vec!["kubelet-token-value".into()],
        };
        let secret = SecretSpec::new("the-secret-value");
        let seed = Seed {
            clients: vec![client.clone()],
            vaults: vec![VaultSeed {
                name: "kv1".into(),
                allowed_clients: vec![],
                secrets: vec![SecretSeed {
                    name: "s1".into(),
                    versions: vec![secret.clone()],
                }],
                ..VaultSeed::default()
            }],
        };
        let out = format!("{client:?} {secret:?} {seed:?} {:?}", world());
        for leak in ["sp-secret-value", "kubelet-token-value", "the-secret-value"] {
            assert!(!out.contains(leak), "{leak} in {out}");
        }
        assert!(out.contains("c1"));
    }

    #[test]
    fn seed_json_parses_with_defaults() {
        let json = r#"{
            "clients": [{"client_id": "c1", "secret": "x"}, {"client_id": "c2", "tenant_id": "t", "federated_tokens": ["a"]}],
            "vaults": [{"name": "kv1", "allowed_clients": ["c1"], "secrets": [
                {"name": "s1", "versions": [{"value": "a", "enabled": false}, {"value": "b", "content_type": "text/plain", "tags": {"k": "v"}, "created": 1700000000}]}
            ]}]
        }"#;
        let seed: Seed = serde_json::from_str(json).expect("seed parses");
        assert_eq!(seed.clients.len(), 2);
        assert_eq!(seed.clients[1].tenant_id.as_deref(), Some("t"));
        let versions = &seed.vaults[0].secrets[0].versions;
        assert!(!versions[0].enabled);
        assert!(versions[1].enabled);
        assert_eq!(versions[1].created, Some(1_700_000_000));
        let state = State::new();
        state.apply_seed(seed).expect("seed applies");
        let ids = state.secret_versions("kv1", "s1").expect("versions");
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn seed_rejects_unknown_fields() {
        let json = r#"{"vaults": [{"name": "kv1", "allowedclients": []}]}"#;
        assert!(serde_json::from_str::<Seed>(json).is_err());
    }

    #[test]
    fn seed_parse_errors_do_not_quote_values() {
        let json = br#"{"vaults": [{"name": "kv1", "secrets": [{"name": "s1", "versions": [{"value": 123456789}]}]}]}"#;
        let err = Seed::from_json(json).expect_err("wrong type");
        let text = err.to_string();
        assert!(!text.contains("123456789"), "{text}");
        assert_eq!(err.line, 1);
    }

    #[test]
    fn expired_tokens_are_not_valid() {
        let state = world();
        let (token, expires_in) = state.issue_token("c1", "t", "https://vault.localhost");
        assert_eq!(expires_in, 3599);
        assert!(state.lock().token(&token).is_some());
        if let Some(t) = state.lock().tokens.get_mut(&token) {
            t.expires_at = Instant::now();
        }
        assert!(state.lock().token(&token).is_none());
        assert!(state.lock().token("kve.unknown").is_none());
    }

    #[test]
    fn challenge_tenant_comes_from_an_allowed_client() {
        let state = world();
        let tenant = |state: &State| {
            let inner = state.lock();
            inner.vault("kv1").map(|v| inner.challenge_tenant(v))
        };
        assert_eq!(tenant(&state).as_deref(), Some("common"));
        state.add_client(ClientSpec {
            client_id: "C1".into(),
            tenant_id: Some("tenant-a".into()),
            ..ClientSpec::default()
        });
        assert_eq!(tenant(&state).as_deref(), Some("tenant-a"));
    }
}
