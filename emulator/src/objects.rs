//! Keys and certificates: their specs and seeds, how they are stored, and the [`State`]
//! operations that create, import, enable and list them.
//!
//! A certificate version comes with a secret version and a key version of the same name and
//! version id, as in Key Vault: the secret (`managed`, with a `kid`) holds the PFX or PEM,
//! the key serves the public JWK of the certificate's key. Generation and parsing happen
//! before the state lock is taken.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::material::{self, CertFacts, Imported, MaterialError, PublicKey};
use crate::state::{
    Secret, State, StateError, Vault, Version, new_version_id, now_secs, valid_secret_name,
};

/// Standard base64, padding optional.
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn default_true() -> bool {
    true
}

fn default_kty() -> String {
    "RSA".to_owned()
}

/// A key to generate with [`State::create_key`] (or from a seed's `keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct` or `oct-HSM` (case-insensitive); `RSA` if not
    /// given.
    #[serde(default = "default_kty")]
    pub kty: String,
    /// RSA: 2048 (default), 3072 or 4096 bits. oct: 128, 192 or 256 (default) bits. EC: the
    /// curve's size if given.
    #[serde(default, alias = "key_size", alias = "keySize")]
    pub size: Option<u32>,
    /// EC curve: `P-256` (default), `P-384` or `P-521`.
    #[serde(default, alias = "curve")]
    pub crv: Option<String>,
    /// Whether this version can be read; `true` unless given.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Creation time in Unix seconds; now when `None`. `updated` is set to the same value.
    #[serde(default)]
    pub created: Option<i64>,
    /// Tags returned with the key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Default for KeySpec {
    fn default() -> Self {
        Self {
            kty: default_kty(),
            size: None,
            crv: None,
            enabled: true,
            created: None,
            tags: BTreeMap::new(),
        }
    }
}

impl KeySpec {
    /// An enabled RSA key of `bits` bits.
    pub fn rsa(bits: u32) -> Self {
        Self {
            kty: "RSA".to_owned(),
            size: Some(bits),
            ..Self::default()
        }
    }

    /// An enabled EC key on `crv` (`P-256`, `P-384`, `P-521`).
    pub fn ec(crv: &str) -> Self {
        Self {
            kty: "EC".to_owned(),
            crv: Some(crv.to_owned()),
            ..Self::default()
        }
    }

    /// An enabled 256-bit symmetric key (`oct`).
    pub fn oct() -> Self {
        Self {
            kty: "oct".to_owned(),
            ..Self::default()
        }
    }
}

/// Options of [`State::import_key_pem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyImportOptions {
    /// Report the key as `RSA-HSM` / `EC-HSM` instead of `RSA` / `EC`.
    #[serde(default)]
    pub hsm: bool,
    /// Whether this version can be read; `true` unless given.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Creation time in Unix seconds; now when `None`.
    #[serde(default)]
    pub created: Option<i64>,
    /// Tags returned with the key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Default for KeyImportOptions {
    fn default() -> Self {
        Self {
            hsm: false,
            enabled: true,
            created: None,
            tags: BTreeMap::new(),
        }
    }
}

/// Options of [`State::import_certificate_pfx`] and [`State::import_certificate_pem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertImportOptions {
    /// Whether this version (certificate, secret and key) can be read; `true` by default.
    pub enabled: bool,
    /// Creation time in Unix seconds; now when `None`. `updated` is set to the same value.
    pub created: Option<i64>,
    /// Tags of the certificate (and of its secret and key).
    pub tags: BTreeMap<String, String>,
    /// Key Vault's `preserveCertOrder`: keep the PFX's certificate order in the backing
    /// secret instead of putting the leaf first. PEM imports are always kept as given.
    pub preserve_cert_order: bool,
}

impl Default for CertImportOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            created: None,
            tags: BTreeMap::new(),
            preserve_cert_order: false,
        }
    }
}

/// One certificate version to import: a seed's `certificates[].versions[]` item and the body
/// of `POST /admin/vaults/{vault}/certificates/{name}/import`. Exactly one of `pfx` and `pem`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateImport {
    /// The PKCS#12 archive, base64 (standard alphabet, padding optional).
    #[serde(default)]
    pub pfx: Option<String>,
    /// PEM text holding one private key and the certificates, in any order.
    #[serde(default)]
    pub pem: Option<String>,
    /// Password of the PFX; none (empty) if not given.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether this version can be read; `true` unless given.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Creation time in Unix seconds; now when `None`.
    #[serde(default)]
    pub created: Option<i64>,
    /// Tags of the certificate.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// See [`CertImportOptions::preserve_cert_order`].
    #[serde(default, alias = "preserveCertOrder")]
    pub preserve_cert_order: bool,
}

impl fmt::Debug for CertificateImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateImport")
            .field("pfx", &self.pfx.as_ref().map(|_| "[REDACTED]"))
            .field("pem", &self.pem.as_ref().map(|_| "[REDACTED]"))
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("enabled", &self.enabled)
            .field("created", &self.created)
            .field("tags", &self.tags)
            .field("preserve_cert_order", &self.preserve_cert_order)
            .finish()
    }
}

/// One key of a [`VaultSeed`](crate::VaultSeed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySeed {
    /// Key name.
    pub name: String,
    /// Versions, oldest first; the last one is the current version.
    #[serde(default)]
    pub versions: Vec<KeySpec>,
}

/// One certificate of a [`VaultSeed`](crate::VaultSeed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSeed {
    /// Certificate name (also that of its secret and key).
    pub name: String,
    /// Versions, oldest first; the last one is the current version.
    #[serde(default)]
    pub versions: Vec<CertificateImport>,
}

/// What a key version holds.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    /// An RSA or EC key: only its public half is kept.
    Public(PublicKey),
    /// A symmetric key: Key Vault never returns its bytes, so none are kept.
    Symmetric,
}

/// One version of a key.
#[derive(Clone)]
pub(crate) struct KeyVersion {
    pub(crate) id: String,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct` or `oct-HSM`.
    pub(crate) kty: String,
    pub(crate) material: KeyMaterial,
    pub(crate) key_ops: &'static [&'static str],
    pub(crate) exportable: bool,
    /// The private key and release policy of an exportable key made by
    /// [`State::create_exportable_key`].
    pub(crate) release: Option<crate::release::Releasable>,
    /// Validity of the certificate, for a certificate's key.
    pub(crate) not_before: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) enabled: bool,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

/// A key: its name as first set, whether a certificate manages it, its versions oldest first.
pub(crate) struct StoredKey {
    pub(crate) name: String,
    pub(crate) managed: bool,
    pub(crate) versions: Vec<KeyVersion>,
}

impl StoredKey {
    pub(crate) fn latest(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }

    pub(crate) fn version(&self, id: &str) -> Option<&KeyVersion> {
        self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id))
    }
}

/// One version of a certificate.
#[derive(Clone)]
pub(crate) struct CertVersion {
    pub(crate) id: String,
    pub(crate) facts: CertFacts,
    /// Content type of the backing secret (`policy.secret_props.contentType`).
    pub(crate) content_type: &'static str,
    pub(crate) preserve_cert_order: bool,
    pub(crate) enabled: bool,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

/// A certificate: its name as first imported and its versions, oldest first.
pub(crate) struct StoredCert {
    pub(crate) name: String,
    pub(crate) versions: Vec<CertVersion>,
}

impl StoredCert {
    pub(crate) fn latest(&self) -> Option<&CertVersion> {
        self.versions.last()
    }

    pub(crate) fn version(&self, id: &str) -> Option<&CertVersion> {
        self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id))
    }
}

pub(crate) const RSA_OPS: &[&str] = &[
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
];
pub(crate) const EC_OPS: &[&str] = &["sign", "verify"];
const OCT_OPS: &[&str] = &["encrypt", "decrypt", "wrapKey", "unwrapKey"];
const CERT_RSA_OPS: &[&str] = &[
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "encrypt",
    "decrypt",
];

pub(crate) fn key_error(err: MaterialError) -> StateError {
    StateError::InvalidKey(err.to_string())
}

fn cert_error(err: MaterialError) -> StateError {
    StateError::InvalidCertificate(err.to_string())
}

pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), StateError> {
    if valid_secret_name(name) {
        Ok(())
    } else {
        Err(StateError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Generates the material of a key spec: kty as Key Vault spells it, material, operations.
fn generate(spec: &KeySpec) -> Result<(String, KeyMaterial, &'static [&'static str]), StateError> {
    let kty = spec.kty.trim();
    let (base, hsm) = match kty.to_ascii_uppercase().as_str() {
        "RSA" => ("RSA", false),
        "RSA-HSM" => ("RSA", true),
        "EC" => ("EC", false),
        "EC-HSM" => ("EC", true),
        "OCT" => ("oct", false),
        "OCT-HSM" => ("oct", true),
        _ => {
            return Err(StateError::InvalidKey(format!(
                "unknown kty '{kty}': expected RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM"
            )));
        }
    };
    let kty = if hsm {
        format!("{base}-HSM")
    } else {
        base.to_owned()
    };
    if base != "EC" && spec.crv.is_some() {
        return Err(StateError::InvalidKey(format!(
            "crv is only valid for EC keys, not {kty}"
        )));
    }
    match base {
        "RSA" => {
            let key = material::generate_rsa(spec.size.unwrap_or(2048)).map_err(key_error)?;
            Ok((kty, KeyMaterial::Public(key), RSA_OPS))
        }
        "EC" => {
            let crv = spec
                .crv
                .as_deref()
                .unwrap_or("P-256")
                .trim()
                .to_ascii_uppercase();
            let key = material::generate_ec(&crv).map_err(key_error)?;
            if let Some(size) = spec.size
                && usize::try_from(size).ok() != Some(key.bits())
            {
                return Err(StateError::InvalidKey(format!(
                    "size {size} does not match curve {crv}"
                )));
            }
            Ok((kty, KeyMaterial::Public(key), EC_OPS))
        }
        _ => match spec.size.unwrap_or(256) {
            128 | 192 | 256 => Ok((kty, KeyMaterial::Symmetric, OCT_OPS)),
            other => Err(StateError::InvalidKey(format!(
                "unsupported oct key size {other}: expected 128, 192 or 256"
            ))),
        },
    }
}

/// A version id not used by the secret, key or certificate of that name.
fn fresh_version_id(vault: &Vault, name: &str) -> String {
    loop {
        let id = new_version_id();
        let taken = vault.secret(name).is_some_and(|s| s.version(&id).is_some())
            || vault.key(name).is_some_and(|k| k.version(&id).is_some())
            || vault
                .certificate(name)
                .is_some_and(|c| c.version(&id).is_some());
        if !taken {
            return id;
        }
    }
}

impl State {
    fn with_vault<T>(
        &self,
        vault: &str,
        f: impl FnOnce(&mut Vault) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut inner = self.lock();
        let stored = inner
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        f(stored)
    }

    pub(crate) fn push_key(
        &self,
        vault: &str,
        name: &str,
        version: impl FnOnce(String) -> KeyVersion,
    ) -> Result<String, StateError> {
        self.with_vault(vault, |stored| {
            if stored.key(name).is_some_and(|k| k.managed) {
                return Err(StateError::Conflict(format!(
                    "key '{name}' in vault '{}' backs a certificate; import a new certificate version instead",
                    stored.name
                )));
            }
            let id = fresh_version_id(stored, name);
            stored
                .keys
                .entry(name.to_ascii_lowercase())
                .or_insert_with(|| StoredKey {
                    name: name.to_owned(),
                    managed: false,
                    versions: Vec::new(),
                })
                .versions
                .push(version(id.clone()));
            Ok(id)
        })
    }

    /// Generates a key version (RSA or EC key pair; for `oct`, nothing is kept since Key
    /// Vault never returns symmetric key material) that becomes the key's current version,
    /// and returns its version id. Only the public key is kept.
    pub fn create_key(&self, vault: &str, name: &str, spec: KeySpec) -> Result<String, StateError> {
        check_name("key", name)?;
        if self.lock().vault(vault).is_none() {
            return Err(StateError::UnknownVault(vault.to_owned()));
        }
        let (kty, material, key_ops) = generate(&spec)?;
        let created = spec.created.unwrap_or_else(now_secs);
        let id = self.push_key(vault, name, |id| KeyVersion {
            id,
            kty,
            material,
            key_ops,
            exportable: false,
            release: None,
            not_before: None,
            expires: None,
            enabled: spec.enabled,
            tags: spec.tags,
            created,
            updated: created,
        })?;
        tracing::debug!(vault = %vault, key = %name, version = %id, "key version created");
        Ok(id)
    }

    /// Imports the key of a PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`;
    /// RSA or EC P-256/P-384/P-521) as a new current version and returns its version id. Only
    /// the public key is kept.
    pub fn import_key_pem(
        &self,
        vault: &str,
        name: &str,
        pem: &str,
        opts: KeyImportOptions,
    ) -> Result<String, StateError> {
        check_name("key", name)?;
        if self.lock().vault(vault).is_none() {
            return Err(StateError::UnknownVault(vault.to_owned()));
        }
        let key = material::public_key_of_pem(pem).map_err(key_error)?;
        let kty = if opts.hsm {
            format!("{}-HSM", key.kty())
        } else {
            key.kty().to_owned()
        };
        let key_ops = if key.kty() == "RSA" { RSA_OPS } else { EC_OPS };
        let created = opts.created.unwrap_or_else(now_secs);
        let id = self.push_key(vault, name, |id| KeyVersion {
            id,
            kty,
            material: KeyMaterial::Public(key),
            key_ops,
            exportable: false,
            release: None,
            not_before: None,
            expires: None,
            enabled: opts.enabled,
            tags: opts.tags,
            created,
            updated: created,
        })?;
        tracing::debug!(vault = %vault, key = %name, version = %id, "key version imported");
        Ok(id)
    }

    /// Enables or disables one version of a key.
    pub fn set_key_enabled(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> Result<(), StateError> {
        let unknown = |v: Option<&str>| StateError::UnknownKey {
            vault: vault.to_owned(),
            name: name.to_owned(),
            version: v.map(str::to_owned),
        };
        self.with_vault(vault, |stored| {
            let key = stored
                .keys
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| unknown(None))?;
            let v = key
                .versions
                .iter_mut()
                .find(|v| v.id.eq_ignore_ascii_case(version))
                .ok_or_else(|| unknown(Some(version)))?;
            v.enabled = enabled;
            v.updated = now_secs().max(v.created);
            Ok(())
        })?;
        tracing::debug!(vault = %vault, key = %name, version = %version, enabled, "key version updated");
        Ok(())
    }

    /// Ids of a key's versions, oldest first (the last is current).
    pub fn key_versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StateError> {
        let inner = self.lock();
        let stored = inner
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let key = stored.key(name).ok_or_else(|| StateError::UnknownKey {
            vault: vault.to_owned(),
            name: name.to_owned(),
            version: None,
        })?;
        Ok(key.versions.iter().map(|v| v.id.clone()).collect())
    }

    /// The public key (SubjectPublicKeyInfo DER) of a key version, the current one when
    /// `version` is `None`. A symmetric key has none: [`StateError::InvalidKey`].
    pub fn key_public_spki(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, StateError> {
        let inner = self.lock();
        let stored = inner
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let unknown = || StateError::UnknownKey {
            vault: vault.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
        };
        let key = stored.key(name).ok_or_else(unknown)?;
        let v = match version {
            Some(id) => key.version(id),
            None => key.latest(),
        }
        .ok_or_else(unknown)?;
        match &v.material {
            KeyMaterial::Public(public) => Ok(public.spki.clone()),
            KeyMaterial::Symmetric => Err(StateError::InvalidKey(format!(
                "key '{name}' is symmetric ({}) and has no public key",
                v.kty
            ))),
        }
    }

    /// Imports a certificate from a PKCS#12 archive (DER) with its password (`None`: empty),
    /// like Key Vault: the backing secret holds the archive re-encoded with an empty password
    /// (every certificate and the key kept; contentType `application/x-pkcs12`), the backing
    /// key the public key of the certificate. Returns the version id shared by the three.
    pub fn import_certificate_pfx(
        &self,
        vault: &str,
        name: &str,
        pfx_der: &[u8],
        password: Option<&str>,
        opts: CertImportOptions,
    ) -> Result<String, StateError> {
        check_name("certificate", name)?;
        if self.lock().vault(vault).is_none() {
            return Err(StateError::UnknownVault(vault.to_owned()));
        }
        let imported = material::import_pfx(pfx_der, password, opts.preserve_cert_order)
            .map_err(cert_error)?;
        self.store_certificate(vault, name, imported, opts)
    }

    /// Imports a certificate from a PEM text holding one private key and one or more
    /// certificates, in any order. The backing secret holds the text as given (contentType
    /// `application/x-pem-file`). Returns the version id.
    pub fn import_certificate_pem(
        &self,
        vault: &str,
        name: &str,
        pem: &str,
        opts: CertImportOptions,
    ) -> Result<String, StateError> {
        check_name("certificate", name)?;
        if self.lock().vault(vault).is_none() {
            return Err(StateError::UnknownVault(vault.to_owned()));
        }
        let imported = material::import_pem(pem).map_err(cert_error)?;
        self.store_certificate(vault, name, imported, opts)
    }

    /// Imports one [`CertificateImport`] (seed item or admin body).
    pub fn import_certificate(
        &self,
        vault: &str,
        name: &str,
        import: CertificateImport,
    ) -> Result<String, StateError> {
        let opts = CertImportOptions {
            enabled: import.enabled,
            created: import.created,
            tags: import.tags,
            preserve_cert_order: import.preserve_cert_order,
        };
        match (import.pfx, import.pem) {
            (Some(pfx), None) => {
                let compact: String = pfx.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let der = BASE64_LENIENT.decode(compact).map_err(|_| {
                    StateError::InvalidCertificate("pfx is not valid base64".to_owned())
                })?;
                self.import_certificate_pfx(vault, name, &der, import.password.as_deref(), opts)
            }
            (None, Some(pem)) => {
                if import.password.is_some() {
                    return Err(StateError::InvalidCertificate(
                        "a password applies to pfx imports only".to_owned(),
                    ));
                }
                self.import_certificate_pem(vault, name, &pem, opts)
            }
            _ => Err(StateError::InvalidCertificate(
                "exactly one of pfx and pem must be given".to_owned(),
            )),
        }
    }

    fn store_certificate(
        &self,
        vault: &str,
        name: &str,
        imported: Imported,
        opts: CertImportOptions,
    ) -> Result<String, StateError> {
        let created = opts.created.unwrap_or_else(now_secs);
        let Imported {
            leaf,
            secret_value,
            content_type,
        } = imported;
        let id = self.with_vault(vault, |stored| {
            if stored.secret(name).is_some_and(|s| !s.managed) {
                return Err(StateError::Conflict(format!(
                    "vault '{}' has a secret '{name}' that no certificate manages",
                    stored.name
                )));
            }
            if stored.key(name).is_some_and(|k| !k.managed) {
                return Err(StateError::Conflict(format!(
                    "vault '{}' has a key '{name}' that no certificate manages",
                    stored.name
                )));
            }
            let id = fresh_version_id(stored, name);
            let key_ops = if leaf.key.kty() == "RSA" {
                CERT_RSA_OPS
            } else {
                EC_OPS
            };
            let lower = name.to_ascii_lowercase();
            stored
                .keys
                .entry(lower.clone())
                .or_insert_with(|| StoredKey {
                    name: name.to_owned(),
                    managed: true,
                    versions: Vec::new(),
                })
                .versions
                .push(KeyVersion {
                    id: id.clone(),
                    kty: leaf.key.kty().to_owned(),
                    material: KeyMaterial::Public(leaf.key.clone()),
                    key_ops,
                    exportable: true,
                    release: None,
                    not_before: Some(leaf.not_before),
                    expires: Some(leaf.not_after),
                    enabled: opts.enabled,
                    tags: opts.tags.clone(),
                    created,
                    updated: created,
                });
            stored
                .secrets
                .entry(lower.clone())
                .or_insert_with(|| Secret {
                    name: name.to_owned(),
                    managed: true,
                    versions: Vec::new(),
                })
                .versions
                .push(Version {
                    id: id.clone(),
                    value: secret_value,
                    content_type: Some(content_type.to_owned()),
                    enabled: opts.enabled,
                    tags: opts.tags.clone(),
                    created,
                    updated: created,
                });
            stored
                .certificates
                .entry(lower)
                .or_insert_with(|| StoredCert {
                    name: name.to_owned(),
                    versions: Vec::new(),
                })
                .versions
                .push(CertVersion {
                    id: id.clone(),
                    facts: leaf,
                    content_type,
                    preserve_cert_order: opts.preserve_cert_order,
                    enabled: opts.enabled,
                    tags: opts.tags,
                    created,
                    updated: created,
                });
            Ok(id)
        })?;
        tracing::debug!(vault = %vault, certificate = %name, version = %id, content_type, "certificate version imported");
        Ok(id)
    }

    /// Enables or disables one version of a certificate, together with its secret and key
    /// versions.
    pub fn set_certificate_enabled(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> Result<(), StateError> {
        let unknown = |v: Option<&str>| StateError::UnknownCertificate {
            vault: vault.to_owned(),
            name: name.to_owned(),
            version: v.map(str::to_owned),
        };
        let lower = name.to_ascii_lowercase();
        self.with_vault(vault, |stored| {
            let now = now_secs();
            let cert = stored
                .certificates
                .get_mut(&lower)
                .ok_or_else(|| unknown(None))?;
            let v = cert
                .versions
                .iter_mut()
                .find(|v| v.id.eq_ignore_ascii_case(version))
                .ok_or_else(|| unknown(Some(version)))?;
            v.enabled = enabled;
            v.updated = now.max(v.created);
            if let Some(v) = stored.secrets.get_mut(&lower).and_then(|s| {
                s.versions
                    .iter_mut()
                    .find(|v| v.id.eq_ignore_ascii_case(version))
            }) {
                v.enabled = enabled;
                v.updated = now.max(v.created);
            }
            if let Some(v) = stored.keys.get_mut(&lower).and_then(|k| {
                k.versions
                    .iter_mut()
                    .find(|v| v.id.eq_ignore_ascii_case(version))
            }) {
                v.enabled = enabled;
                v.updated = now.max(v.created);
            }
            Ok(())
        })?;
        tracing::debug!(vault = %vault, certificate = %name, version = %version, enabled, "certificate version updated");
        Ok(())
    }

    /// Ids of a certificate's versions, oldest first (the last is current).
    pub fn certificate_versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StateError> {
        let inner = self.lock();
        let stored = inner
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let cert = stored
            .certificate(name)
            .ok_or_else(|| StateError::UnknownCertificate {
                vault: vault.to_owned(),
                name: name.to_owned(),
                version: None,
            })?;
        Ok(cert.versions.iter().map(|v| v.id.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> State {
        let state = State::new();
        state.add_vault("kv1", vec![]);
        state
    }

    fn self_signed_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["c.test".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        format!("{}{}", key.serialize_pem(), cert.pem())
    }

    #[test]
    fn key_specs_are_validated() {
        let state = world();
        for bad in [
            KeySpec {
                kty: "DSA".into(),
                ..KeySpec::default()
            },
            KeySpec::rsa(1024),
            KeySpec::ec("P-256K"),
            KeySpec {
                size: Some(384),
                ..KeySpec::ec("P-256")
            },
            KeySpec {
                size: Some(512),
                ..KeySpec::oct()
            },
            KeySpec {
                crv: Some("P-256".into()),
                ..KeySpec::oct()
            },
        ] {
            assert!(
                matches!(
                    state.create_key("kv1", "k", bad.clone()),
                    Err(StateError::InvalidKey(_))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            state.create_key("kv1", "a_b", KeySpec::oct()),
            Err(StateError::InvalidName { kind: "key", .. })
        ));
        assert!(matches!(
            state.create_key("nope", "k", KeySpec::oct()),
            Err(StateError::UnknownVault(_))
        ));
        let id = state
            .create_key(
                "kv1",
                "k",
                KeySpec {
                    kty: "oct-hsm".into(),
                    ..KeySpec::default()
                },
            )
            .expect("oct-HSM");
        let inner = state.lock();
        let key = inner.vault("kv1").and_then(|v| v.key("K")).expect("key");
        assert_eq!(key.version(&id).map(|v| v.kty.as_str()), Some("oct-HSM"));
    }

    #[test]
    fn certificate_versions_share_ids_with_their_secret_and_key() {
        let state = world();
        let pem = self_signed_pem();
        let v1 = state
            .import_certificate_pem("kv1", "c1", &pem, CertImportOptions::default())
            .expect("import");
        let v2 = state
            .import_certificate_pem("kv1", "C1", &pem, CertImportOptions::default())
            .expect("import");
        assert_eq!(
            state.certificate_versions("kv1", "c1").expect("versions"),
            vec![v1.clone(), v2.clone()]
        );
        assert_eq!(
            state.secret_versions("kv1", "c1").expect("versions"),
            vec![v1.clone(), v2.clone()]
        );
        assert_eq!(
            state.key_versions("kv1", "c1").expect("versions"),
            vec![v1.clone(), v2]
        );

        state
            .set_certificate_enabled("kv1", "c1", &v1, false)
            .expect("disable");
        let inner = state.lock();
        let vault = inner.vault("kv1").expect("vault");
        assert_eq!(
            vault
                .certificate("c1")
                .and_then(|c| c.version(&v1))
                .map(|v| v.enabled),
            Some(false)
        );
        assert_eq!(
            vault
                .secret("c1")
                .and_then(|c| c.version(&v1))
                .map(|v| v.enabled),
            Some(false)
        );
        assert_eq!(
            vault
                .key("c1")
                .and_then(|c| c.version(&v1))
                .map(|v| v.enabled),
            Some(false)
        );
        assert!(vault.secret("c1").is_some_and(|s| s.managed));
    }

    #[test]
    fn managed_and_plain_objects_do_not_mix() {
        let state = world();
        let pem = self_signed_pem();
        state
            .import_certificate_pem("kv1", "c1", &pem, CertImportOptions::default())
            .expect("import");
        assert!(matches!(
            state.set_secret("kv1", "c1", crate::SecretSpec::new("x")),
            Err(StateError::Conflict(_))
        ));
        assert!(matches!(
            state.create_key("kv1", "c1", KeySpec::oct()),
            Err(StateError::Conflict(_))
        ));
        state
            .set_secret("kv1", "plain", crate::SecretSpec::new("x"))
            .expect("secret");
        assert!(matches!(
            state.import_certificate_pem("kv1", "plain", &pem, CertImportOptions::default()),
            Err(StateError::Conflict(_))
        ));
        state.create_key("kv1", "k1", KeySpec::oct()).expect("key");
        assert!(matches!(
            state.import_certificate_pem("kv1", "k1", &pem, CertImportOptions::default()),
            Err(StateError::Conflict(_))
        ));
    }

    #[test]
    fn certificate_import_needs_exactly_one_source_and_redacts_debug() {
        let state = world();
        let both = CertificateImport {
            pfx: Some("AAAA".into()),
            pem: Some("x".into()),
            ..CertificateImport::default()
        };
        assert!(matches!(
            state.import_certificate("kv1", "c", both),
            Err(StateError::InvalidCertificate(_))
        ));
        let neither = CertificateImport::default();
        assert!(matches!(
            state.import_certificate("kv1", "c", neither),
            Err(StateError::InvalidCertificate(_))
        ));
        let bad = CertificateImport {
            pfx: Some("not base64!".into()),
            password: Some("pfx-password-Zz1".into()),
            ..CertificateImport::default()
        };
        let debug = format!("{bad:?}");
        assert!(
            !debug.contains("pfx-password-Zz1") && !debug.contains("not base64"),
            "{debug}"
        );
        assert!(matches!(
            state.import_certificate("kv1", "c", bad),
            Err(StateError::InvalidCertificate(_))
        ));
    }
}
