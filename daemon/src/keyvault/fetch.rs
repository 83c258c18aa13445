//! Fetching the objects of a volume concurrently and rendering each into the
//! bytes of its file(s).

use azure_security_keyvault_certificates::models::{
    CertificateClientGetCertificateOptions,
    CertificateClientListCertificatePropertiesVersionsOptions,
};
use azure_security_keyvault_keys::models::{
    KeyClientGetKeyOptions, KeyClientListKeyPropertiesVersionsOptions,
};
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListSecretPropertiesVersionsOptions,
};
use std::sync::Arc;

use base64::Engine as _;
use futures::{FutureExt, TryStreamExt};
use zeroize::Zeroize;

use super::convert::{
    ConvertError, Jwk, cert_der_to_pem, jwk_to_spki_pem, pem_bundle_normalise, pem_to_pfx,
    pfx_to_pem,
};
use super::{Cause, DEADLINE, KeyVault, VaultClients, classify};
use crate::auth::{AuthError, Identity, IdentityKey};
use crate::mount::{Payload, PayloadFile};
use crate::params::{ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType, VolumeParams};
use crate::store::{FetchedVersion, Held, ObjectKey, Refresh, SecretBytes};

/// contentType of a PKCS#12 (PFX) certificate-holding secret.
pub const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";
/// contentType of a PEM certificate-holding secret.
pub const CONTENT_TYPE_PEM: &str = "application/x-pem-file";

/// What went wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchErrorKind {
    /// Key Vault or Entra ID failed (see [`Cause`]).
    Service(Cause),
    /// The stored value does not decode with the object's `objectEncoding`.
    Decode {
        /// `hex` or `base64`.
        encoding: &'static str,
    },
    /// The object's content cannot be converted (a symmetric key, a
    /// malformed certificate or PFX...).
    Convert(ConvertError),
    /// The attributes do not fit what the object holds (e.g. `objectFormat:
    /// pfx` on a secret that holds no certificate).
    Usage(String),
    /// `objectVersion` pinned with history, and the pinned version is missing
    /// from the version list.
    PinnedVersionNotFound,
}

/// A failed fetch, naming the vault and the object (never a value).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.describe())]
pub struct FetchError {
    /// Vault name.
    pub vault: String,
    /// Object index in `objects`, when the failure is about one object.
    pub index: Option<usize>,
    /// objectName.
    pub name: Option<String>,
    /// What went wrong.
    pub kind: FetchErrorKind,
}

impl FetchError {
    fn describe(&self) -> String {
        let what = match (&self.index, &self.name) {
            (Some(i), Some(n)) => format!("objects[{i}] (object {n}) in key vault {}", self.vault),
            _ => format!("key vault {}", self.vault),
        };
        match &self.kind {
            FetchErrorKind::Service(c) => format!("{what}: {c}"),
            FetchErrorKind::Decode { encoding } => {
                format!("{what}: the stored value is not valid {encoding} (objectEncoding)")
            }
            FetchErrorKind::Convert(e) => format!("{what}: {e}"),
            FetchErrorKind::Usage(reason) => format!("{what}: {reason}"),
            FetchErrorKind::PinnedVersionNotFound => {
                format!("{what}: objectVersion was not found among the object's versions")
            }
        }
    }

    /// The same failure, named for `spec` (a shared fetch reports the index
    /// of whoever started it).
    fn for_object(mut self, spec: &ObjectSpec) -> Self {
        if self.index.is_some() {
            self.index = Some(spec.index);
            self.name = Some(spec.name.clone());
        }
        self
    }

    /// A failure building the client or credential, for the whole volume.
    pub fn auth(vault: &str, err: &AuthError) -> Self {
        FetchError {
            vault: vault.to_string(),
            index: None,
            name: None,
            kind: FetchErrorKind::Service(Cause::Unauthenticated {
                detail: err.to_string(),
            }),
        }
    }
}

struct Ctx<'a> {
    vault: &'a str,
    spec: &'a ObjectSpec,
}

impl Ctx<'_> {
    fn err(&self, kind: FetchErrorKind) -> FetchError {
        FetchError {
            vault: self.vault.to_string(),
            index: Some(self.spec.index),
            name: Some(self.spec.name.clone()),
            kind,
        }
    }

    fn service(&self, e: &azure_core::Error) -> FetchError {
        self.err(FetchErrorKind::Service(classify(e)))
    }

    fn convert(&self, e: ConvertError) -> FetchError {
        self.err(FetchErrorKind::Convert(e))
    }

    fn usage(&self, reason: &str) -> FetchError {
        self.err(FetchErrorKind::Usage(reason.to_string()))
    }
}

/// Version id from a Key Vault object id URL (`.../secrets/name/version`).
fn version_of(id: Option<&str>) -> Option<String> {
    id?.trim_end_matches('/')
        .rsplit('/')
        .next()
        .map(str::to_string)
}

/// The files of a volume and the cache entries they came from. The volume
/// keeps `leases` for as long as it is published, so the objects stay
/// shared with other volumes of its (namespace, identity).
#[derive(Debug)]
pub struct VolumeContent {
    /// The files to write.
    pub payload: Payload,
    /// One entry per object, in `objects` order.
    pub leases: Vec<Arc<Held>>,
}

/// The cache key of one object of a volume.
pub fn object_key(
    namespace: &str,
    identity: &IdentityKey,
    vault_url: &str,
    spec: &ObjectSpec,
) -> ObjectKey {
    ObjectKey {
        namespace: namespace.to_string(),
        identity: identity.clone(),
        vault: vault_url.to_ascii_lowercase(),
        object_type: spec.object_type,
        name: spec.name.to_ascii_lowercase(),
        version: spec.version.as_ref().map(|v| v.to_ascii_lowercase()),
        history: spec.version_history.max(1),
    }
}

impl KeyVault {
    /// Takes every object of the volume from the cache, fetching
    /// concurrently (one fetch per key node-wide) what is not held, and
    /// renders its files. The first failure cancels the rest.
    ///
    /// # Errors
    /// [`FetchError`] naming the vault and object.
    pub async fn fetch_volume(
        &self,
        params: &VolumeParams,
        identity: &Identity,
    ) -> Result<VolumeContent, FetchError> {
        // The retry policy never sleeps past the deadline: the caller's, or
        // `--publish-timeout` from now.
        if DEADLINE.try_with(|_| ()).is_ok() {
            self.fetch_volume_inner(params, identity).await
        } else {
            let deadline = std::time::Instant::now() + self.publish_timeout;
            DEADLINE
                .scope(deadline, self.fetch_volume_inner(params, identity))
                .await
        }
    }

    async fn fetch_volume_inner(
        &self,
        params: &VolumeParams,
        identity: &Identity,
    ) -> Result<VolumeContent, FetchError> {
        let vault_url = self.vault_url(params);
        let vault = params.keyvault_name.as_str();
        let clients = self
            .vault_clients(&vault_url, identity)
            .map_err(|e| FetchError::auth(vault, &e))?;
        // `release: true` objects go through Secure Key Release instead.
        let jobs = params
            .objects
            .iter()
            .filter(|s| !s.is_released())
            .map(|spec| {
                let key = object_key(&params.pod.namespace, &identity.key, &vault_url, spec);
                let clients = clients.clone();
                async move {
                    let fetch = || fetch_versions(clients, vault.to_string(), spec.clone()).boxed();
                    self.cache
                        .get_or_fetch(&key, fetch)
                        .await
                        .map_err(|e| e.for_object(spec))
                }
            });
        let leases: Vec<Arc<Held>> = futures::future::try_join_all(jobs).await?;
        let payload = render_volume(params, &leases)?;
        Ok(VolumeContent { payload, leases })
    }

    /// Re-reads the object behind `held` (one of a volume's leases, for
    /// `spec`) unless it was checked less than `max_age` ago.
    pub async fn refresh_object(
        &self,
        params: &VolumeParams,
        identity: &IdentityKey,
        spec: &ObjectSpec,
        held: &Arc<Held>,
        max_age: std::time::Duration,
    ) -> Refresh<FetchError> {
        let vault = params.keyvault_name.as_str();
        let Some(clients) = self.clients_for(&self.vault_url(params), identity) else {
            return Refresh::Failed(FetchError {
                vault: vault.to_string(),
                index: Some(spec.index),
                name: Some(spec.name.clone()),
                kind: FetchErrorKind::Service(Cause::Unauthenticated {
                    detail: "no credential is held for this identity".into(),
                }),
            });
        };
        let fetch = || fetch_versions(clients, vault.to_string(), spec.clone()).boxed();
        let refresh = self.cache.refresh(held, max_age, fetch);
        let refreshed = if DEADLINE.try_with(|_| ()).is_ok() {
            refresh.await
        } else {
            let deadline = std::time::Instant::now() + self.publish_timeout;
            DEADLINE.scope(deadline, refresh).await
        };
        match refreshed {
            Refresh::Failed(e) => Refresh::Failed(e.for_object(spec)),
            other => other,
        }
    }
}

/// Renders the files of a volume from its leases (one per object, in
/// `objects` order, `release: true` objects left out: they are not cached).
///
/// # Errors
/// [`FetchError`] when an object cannot be rendered as the volume asks.
pub fn render_volume(params: &VolumeParams, leases: &[Arc<Held>]) -> Result<Payload, FetchError> {
    let vault = params.keyvault_name.as_str();
    let mut files = Vec::new();
    for (spec, held) in params
        .objects
        .iter()
        .filter(|s| !s.is_released())
        .zip(leases)
    {
        let ctx = Ctx { vault, spec };
        // History indices beyond the available versions are simply not
        // written.
        for (i, out) in spec.output_files().into_iter().enumerate() {
            if i >= held.versions().len() {
                break;
            }
            let content = match spec.object_type {
                ObjectType::Secret => {
                    let render = |v: &FetchedVersion| {
                        let render = || render_secret(&ctx, &v.value, v.content_type.as_deref());
                        // PKCS#12 key stretching and conversions are
                        // CPU-bound: keep them off the async workers where
                        // the runtime allows it.
                        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                                tokio::task::block_in_place(render)
                            }
                            _ => render(),
                        }
                    };
                    held.rendered((i, spec.format, spec.encoding), render, || {
                        ctx.usage("the version is no longer held")
                    })?
                }
                ObjectType::Key | ObjectType::Cert => held.versions()[i].value.clone(),
            };
            files.push(PayloadFile {
                path: out.path,
                mode: spec.file_mode,
                content,
            });
        }
    }
    Ok(Payload { files })
}

/// Reads the versions an object spec asks for, newest first: the latest
/// (or pinned) one, or with history the newest enabled N.
async fn fetch_versions(
    clients: Arc<VaultClients>,
    vault: String,
    spec: ObjectSpec,
) -> Result<Vec<FetchedVersion>, FetchError> {
    let ctx = Ctx {
        vault: &vault,
        spec: &spec,
    };
    let first = clients.first_use(spec.object_type).await;
    let result = fetch_versions_warm(&clients, &ctx).await;
    VaultClients::warmed(first);
    result
}

async fn fetch_versions_warm(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
) -> Result<Vec<FetchedVersion>, FetchError> {
    let spec = ctx.spec;
    let wanted: Vec<Option<String>> = if spec.version_history >= 2 {
        history_versions(clients, ctx)
            .await?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![spec.version.clone()]
    };
    let mut out = Vec::with_capacity(wanted.len());
    for version in wanted {
        let (value, content_type, id) = match spec.object_type {
            ObjectType::Secret => get_secret(clients, ctx, version.clone()).await?,
            ObjectType::Key => get_key_pem(clients, ctx, version.clone()).await?,
            ObjectType::Cert => get_cert_pem(clients, ctx, version.clone()).await?,
        };
        out.push(FetchedVersion {
            id: id.or(version).unwrap_or_default(),
            content_type,
            value: Arc::new(value),
        });
    }
    Ok(out)
}

/// Page size asked of Key Vault when listing versions (its default is 25).
const PAGE_SIZE: i32 = 25;

/// (created, version id, enabled) of every version of the object, through
/// all pages.
async fn list_versions(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
) -> Result<Vec<(i128, String, bool)>, FetchError> {
    let name = ctx.spec.name.as_str();
    let row = |id: Option<&str>, created: Option<time::OffsetDateTime>, enabled: Option<bool>| {
        version_of(id).map(|v| {
            (
                created.map(|t| t.unix_timestamp_nanos()).unwrap_or(0),
                v,
                enabled.unwrap_or(true),
            )
        })
    };
    // The three SDK clients have the same listing shape with different
    // types; one macro keeps the three calls identical.
    macro_rules! list {
        ($client:expr, $method:ident, $options:ident, $id:ident) => {{
            let pager = $client
                .$method(
                    name,
                    Some($options {
                        maxresults: Some(PAGE_SIZE),
                        ..Default::default()
                    }),
                )
                .map_err(|e| ctx.service(&e))?;
            let items: Vec<_> = pager.try_collect().await.map_err(|e| ctx.service(&e))?;
            items
                .iter()
                .filter_map(|p| {
                    let a = p.attributes.as_ref();
                    row(
                        p.$id.as_deref(),
                        a.and_then(|a| a.created),
                        a.and_then(|a| a.enabled),
                    )
                })
                .collect::<Vec<_>>()
        }};
    }
    let rows = match ctx.spec.object_type {
        ObjectType::Secret => list!(
            clients.secrets,
            list_secret_properties_versions,
            SecretClientListSecretPropertiesVersionsOptions,
            id
        ),
        ObjectType::Key => list!(
            clients.keys,
            list_key_properties_versions,
            KeyClientListKeyPropertiesVersionsOptions,
            kid
        ),
        ObjectType::Cert => list!(
            clients.certificates,
            list_certificate_properties_versions,
            CertificateClientListCertificatePropertiesVersionsOptions,
            id
        ),
    };
    Ok(rows)
}

/// Enabled versions, newest first by (created, version id), starting at the
/// pinned version if any, at most `version_history` of them (DESIGN §4).
async fn history_versions(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
) -> Result<Vec<String>, FetchError> {
    let spec = ctx.spec;
    let mut all = list_versions(clients, ctx).await?;
    all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let start = match &spec.version {
        None => 0,
        Some(pinned) => {
            let pos = all
                .iter()
                .position(|(_, v, _)| v.eq_ignore_ascii_case(pinned))
                .ok_or_else(|| ctx.err(FetchErrorKind::PinnedVersionNotFound))?;
            if !all[pos].2 {
                return Err(ctx.err(FetchErrorKind::Service(Cause::Disabled)));
            }
            pos
        }
    };
    let versions: Vec<String> = all
        .into_iter()
        .skip(start)
        .filter(|(_, _, enabled)| *enabled)
        .take(spec.version_history as usize)
        .map(|(_, v, _)| v)
        .collect();
    if versions.is_empty() {
        // Every version is disabled: like a disabled current version, not
        // a silently missing file.
        return Err(ctx.err(FetchErrorKind::Service(Cause::Disabled)));
    }
    Ok(versions)
}

async fn get_secret(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
    version: Option<String>,
) -> Result<(SecretBytes, Option<String>, Option<String>), FetchError> {
    let resp = clients
        .secrets
        .get_secret(
            &ctx.spec.name,
            Some(SecretClientGetSecretOptions {
                secret_version: version,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| ctx.service(&e))?;
    let secret = resp.into_model().map_err(|e| ctx.service(&e))?;
    if secret.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return Err(ctx.err(FetchErrorKind::Service(Cause::Disabled)));
    }
    // Convert at the boundary: the SDK's String is copied into a locked
    // buffer and wiped at once.
    let id = version_of(secret.id.as_deref());
    let value = secret
        .value
        .map(SecretBytes::from_string)
        .unwrap_or_else(|| SecretBytes::copy_from(b""));
    Ok((value, secret.content_type, id))
}

async fn get_key_pem(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
    version: Option<String>,
) -> Result<(SecretBytes, Option<String>, Option<String>), FetchError> {
    let resp = clients
        .keys
        .get_key(
            &ctx.spec.name,
            Some(KeyClientGetKeyOptions {
                key_version: version,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| ctx.service(&e))?;
    let key = resp.into_model().map_err(|e| ctx.service(&e))?;
    if key.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return Err(ctx.err(FetchErrorKind::Service(Cause::Disabled)));
    }
    let jwk = key
        .key
        .ok_or_else(|| ctx.convert(ConvertError::MalformedJwk("the key has no JWK")))?;
    let id = version_of(jwk.kid.as_deref());
    let converted = Jwk {
        kty: jwk.kty.map(|k| k.as_ref().to_string()).unwrap_or_default(),
        n: jwk.n,
        e: jwk.e,
        crv: jwk.crv.map(|c| c.as_ref().to_string()),
        x: jwk.x,
        y: jwk.y,
    };
    let pem = jwk_to_spki_pem(&converted).map_err(|e| ctx.convert(e))?;
    Ok((SecretBytes::from_string(pem), None, id))
}

async fn get_cert_pem(
    clients: &VaultClients,
    ctx: &Ctx<'_>,
    version: Option<String>,
) -> Result<(SecretBytes, Option<String>, Option<String>), FetchError> {
    let resp = clients
        .certificates
        .get_certificate(
            &ctx.spec.name,
            Some(CertificateClientGetCertificateOptions {
                certificate_version: version,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| ctx.service(&e))?;
    let cert = resp.into_model().map_err(|e| ctx.service(&e))?;
    if cert.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return Err(ctx.err(FetchErrorKind::Service(Cause::Disabled)));
    }
    let der = cert
        .cer
        .ok_or_else(|| ctx.convert(ConvertError::MalformedCertificate { position: 0 }))?;
    let id = version_of(cert.id.as_deref());
    let pem = cert_der_to_pem(&der).map_err(|e| ctx.convert(e))?;
    Ok((SecretBytes::from_string(pem), None, id))
}

fn decode_encoding(
    ctx: &Ctx<'_>,
    value: &Arc<SecretBytes>,
) -> Result<Arc<SecretBytes>, FetchError> {
    let decoded = match ctx.spec.encoding.unwrap_or(ObjectEncoding::Utf8) {
        ObjectEncoding::Utf8 => return Ok(value.clone()),
        ObjectEncoding::Base64 => {
            return decode_base64(value.expose())
                .map(Arc::new)
                .ok_or_else(|| ctx.err(FetchErrorKind::Decode { encoding: "base64" }));
        }
        ObjectEncoding::Hex => hex::decode(value.expose())
            .map_err(|_| ctx.err(FetchErrorKind::Decode { encoding: "hex" }))?,
    };
    Ok(Arc::new(SecretBytes::from_vec(decoded)))
}

/// Standard base64 as the Azure provider decodes it (Go's
/// `base64.StdEncoding.DecodeString`): padding required, `\r` and `\n`
/// skipped anywhere, non-zero trailing bits tolerated.
fn decode_base64(text: &[u8]) -> Option<SecretBytes> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let mut compact: Vec<u8> = Vec::with_capacity(text.len());
    compact.extend(text.iter().copied().filter(|b| *b != b'\r' && *b != b'\n'));
    let decoded = LENIENT.decode(&compact);
    compact.zeroize();
    decoded.ok().map(SecretBytes::from_vec)
}

const ENCODING_ON_CERT: &str = "objectEncoding must be utf-8 for a secret that holds a certificate (use objectFormat: pfx with objectEncoding: base64 for a binary PFX)";

/// Renders a secret's value per its contentType, `objectFormat` and
/// `objectEncoding` (DESIGN §4):
/// - `application/x-pkcs12`: PEM = PKCS#8 key then the ordered chain;
///   pfx = the stored base64 PFX as is (binary with `objectEncoding: base64`);
/// - `application/x-pem-file` holding a certificate: PEM normalised the same
///   way; pfx = converted to a PFX with an empty password;
/// - anything else: the value, decoded by `objectEncoding`.
fn render_secret(
    ctx: &Ctx<'_>,
    value: &Arc<SecretBytes>,
    content_type: Option<&str>,
) -> Result<Arc<SecretBytes>, FetchError> {
    let ct = content_type.map(|c| c.trim().to_ascii_lowercase());
    let is_pkcs12 = ct.as_deref() == Some(CONTENT_TYPE_PKCS12);
    let is_pem = ct.as_deref() == Some(CONTENT_TYPE_PEM);
    let encoding = ctx.spec.encoding.unwrap_or(ObjectEncoding::Utf8);
    match ctx.spec.format.unwrap_or(ObjectFormat::Pem) {
        ObjectFormat::Pfx => {
            let pfx_base64 = if is_pkcs12 {
                value.clone()
            } else if is_pem && pem_holds_certificate(value) {
                let pfx = pem_to_pfx(value.expose()).map_err(|e| ctx.convert(e))?;
                let mut text = base64::engine::general_purpose::STANDARD.encode(pfx.expose());
                let out = SecretBytes::copy_from(text.as_bytes());
                text.zeroize();
                Arc::new(out)
            } else {
                return Err(ctx.usage(
                    "objectFormat pfx applies only to a secret that holds a certificate (contentType application/x-pkcs12 or application/x-pem-file)",
                ));
            };
            match encoding {
                ObjectEncoding::Utf8 => Ok(pfx_base64),
                ObjectEncoding::Base64 => decode_base64(pfx_base64.expose())
                    .map(Arc::new)
                    .ok_or_else(|| ctx.err(FetchErrorKind::Decode { encoding: "base64" })),
                ObjectEncoding::Hex => Err(ctx.usage(ENCODING_ON_CERT)),
            }
        }
        ObjectFormat::Pem if is_pkcs12 => {
            if encoding != ObjectEncoding::Utf8 {
                return Err(ctx.usage(ENCODING_ON_CERT));
            }
            let der = decode_base64(value.expose())
                .ok_or_else(|| ctx.convert(ConvertError::NotPkcs12))?;
            pfx_to_pem(der.expose(), "")
                .map(Arc::new)
                .map_err(|e| ctx.convert(e))
        }
        ObjectFormat::Pem if is_pem => match pem_bundle_normalise(value.expose()) {
            Ok(Some(normalised)) => {
                if encoding != ObjectEncoding::Utf8 {
                    return Err(ctx.usage(ENCODING_ON_CERT));
                }
                Ok(Arc::new(normalised))
            }
            // A PEM secret without a certificate is written as is.
            Ok(None) => decode_encoding(ctx, value),
            // Blocks we cannot normalise (CRLs, encrypted keys, unusual key
            // forms): written as stored, as the Azure provider does.
            Err(e) => {
                if encoding != ObjectEncoding::Utf8 {
                    return Err(ctx.usage(ENCODING_ON_CERT));
                }
                crate::warn_limited!(
                    object_index = ctx.spec.index,
                    object = %ctx.spec.name,
                    reason = %e,
                    "PEM secret written as stored: it cannot be normalised"
                );
                Ok(value.clone())
            }
        },
        ObjectFormat::Pem => decode_encoding(ctx, value),
    }
}

fn pem_holds_certificate(value: &SecretBytes) -> bool {
    value
        .expose()
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_like_go_std_encoding() {
        let d = |s: &str| decode_base64(s.as_bytes()).map(|b| b.expose().to_vec());
        assert_eq!(d("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(d("aGVs\r\nbG8=\n").as_deref(), Some(&b"hello"[..]));
        assert_eq!(d("aGVsbG9=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(d("//4=").as_deref(), Some(&[0xff, 0xfe][..]));
        assert_eq!(d("aGVsbG8"), None, "padding is required");
        assert_eq!(d("hello world!"), None);
        assert_eq!(d("aGVs bG8="), None, "only CR and LF are skipped");
    }

    #[test]
    fn version_is_the_last_segment() {
        assert_eq!(
            version_of(Some("https://kv.vault.localhost:1/secrets/s1/abc123")).as_deref(),
            Some("abc123")
        );
        assert_eq!(version_of(None), None);
    }
}
