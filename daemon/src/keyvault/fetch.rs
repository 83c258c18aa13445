//! Fetching the objects of a volume concurrently and rendering each into the
//! bytes of its file(s).

use std::sync::Arc;

use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListSecretPropertiesVersionsOptions,
};
use base64::Engine as _;
use futures::TryStreamExt;
use zeroize::Zeroize;

use super::{Cause, KeyVault, classify};
use crate::auth::{AuthError, Identity};
use crate::mount::{Payload, PayloadFile};
use crate::params::{ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType, VolumeParams};
use crate::store::SecretBytes;

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
    /// An object type or format that arrives with a later release.
    NotInThisBuild {
        /// e.g. `objectType key`.
        what: String,
    },
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
            FetchErrorKind::NotInThisBuild { what: w } => {
                format!("{what}: {w} is not supported by this build yet")
            }
            FetchErrorKind::PinnedVersionNotFound => {
                format!("{what}: objectVersion was not found among the object's versions")
            }
        }
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
}

/// Version id from a Key Vault object id URL (`.../secrets/name/version`).
fn version_of(id: Option<&str>) -> Option<String> {
    id?.trim_end_matches('/')
        .rsplit('/')
        .next()
        .map(str::to_string)
}

impl KeyVault {
    /// Fetches every object of the volume concurrently and renders its files.
    /// The first failure cancels the rest.
    ///
    /// # Errors
    /// [`FetchError`] naming the vault and object.
    pub async fn fetch_volume(
        &self,
        params: &VolumeParams,
        identity: &Identity,
    ) -> Result<Payload, FetchError> {
        let vault_url = self.vault_url(params);
        let vault = params.keyvault_name.as_str();
        let client = self
            .secret_client(&vault_url, identity)
            .map_err(|e| FetchError::auth(vault, &e))?;
        let jobs = params.objects.iter().map(|spec| {
            let client = client.clone();
            async move { fetch_object(&client, Ctx { vault, spec }).await }
        });
        let per_object: Vec<Vec<PayloadFile>> = futures::future::try_join_all(jobs).await?;
        Ok(Payload {
            files: per_object.into_iter().flatten().collect(),
        })
    }
}

async fn fetch_object(
    client: &Arc<SecretClient>,
    ctx: Ctx<'_>,
) -> Result<Vec<PayloadFile>, FetchError> {
    let spec = ctx.spec;
    match spec.object_type {
        ObjectType::Secret => {}
        ObjectType::Key => {
            return Err(ctx.err(FetchErrorKind::NotInThisBuild {
                what: "objectType key".into(),
            }));
        }
        ObjectType::Cert => {
            return Err(ctx.err(FetchErrorKind::NotInThisBuild {
                what: "objectType cert".into(),
            }));
        }
    }
    if spec.format == Some(ObjectFormat::Pfx) {
        return Err(ctx.err(FetchErrorKind::NotInThisBuild {
            what: "objectFormat pfx".into(),
        }));
    }
    let outputs = spec.output_files();
    let versions: Vec<Option<String>> = if spec.version_history >= 2 {
        history_versions(client, &ctx)
            .await?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![spec.version.clone()]
    };
    let mut files = Vec::with_capacity(outputs.len());
    // History indices beyond the available versions are simply not written.
    for (out, version) in outputs.into_iter().zip(versions) {
        let value = get_secret_value(client, &ctx, version).await?;
        let content = render_secret(&ctx, value)?;
        files.push(PayloadFile {
            path: out.path,
            mode: spec.file_mode,
            content,
        });
    }
    Ok(files)
}

/// Enabled versions, newest first by (created, version id), starting at the
/// pinned version if any, at most `version_history` of them (DESIGN §4).
async fn history_versions(client: &SecretClient, ctx: &Ctx<'_>) -> Result<Vec<String>, FetchError> {
    let spec = ctx.spec;
    let pager = client
        .list_secret_properties_versions(
            &spec.name,
            Some(SecretClientListSecretPropertiesVersionsOptions {
                maxresults: Some(25),
                ..Default::default()
            }),
        )
        .map_err(|e| ctx.service(&e))?;
    let items: Vec<_> = pager.try_collect().await.map_err(|e| ctx.service(&e))?;
    let mut all: Vec<(i128, String, bool)> = items
        .into_iter()
        .filter_map(|p| {
            let version = version_of(p.id.as_deref())?;
            let attrs = p.attributes.as_ref();
            let created = attrs
                .and_then(|a| a.created)
                .map(|t| t.unix_timestamp_nanos())
                .unwrap_or(0);
            let enabled = attrs.and_then(|a| a.enabled).unwrap_or(true);
            Some((created, version, enabled))
        })
        .collect();
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
    Ok(all
        .into_iter()
        .skip(start)
        .filter(|(_, _, enabled)| *enabled)
        .take(spec.version_history as usize)
        .map(|(_, v, _)| v)
        .collect())
}

async fn get_secret_value(
    client: &SecretClient,
    ctx: &Ctx<'_>,
    version: Option<String>,
) -> Result<SecretBytes, FetchError> {
    let resp = client
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
    Ok(secret
        .value
        .map(SecretBytes::from_string)
        .unwrap_or_else(|| SecretBytes::copy_from(b"")))
}

/// Applies `objectEncoding` to a plain secret's value (the Azure provider's
/// semantics: the stored text is decoded; `utf-8` writes it as is).
fn render_secret(ctx: &Ctx<'_>, value: SecretBytes) -> Result<SecretBytes, FetchError> {
    match ctx.spec.encoding.unwrap_or(ObjectEncoding::Utf8) {
        ObjectEncoding::Utf8 => Ok(value),
        ObjectEncoding::Base64 => {
            let mut out = base64::engine::general_purpose::STANDARD
                .decode(value.expose())
                .map_err(|_| ctx.err(FetchErrorKind::Decode { encoding: "base64" }))?;
            let s = SecretBytes::copy_from(&out);
            out.zeroize();
            Ok(s)
        }
        ObjectEncoding::Hex => {
            let mut out = hex::decode(value.expose())
                .map_err(|_| ctx.err(FetchErrorKind::Decode { encoding: "hex" }))?;
            let s = SecretBytes::copy_from(&out);
            out.zeroize();
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_last_segment() {
        assert_eq!(
            version_of(Some("https://kv.vault.localhost:1/secrets/s1/abc123")).as_deref(),
            Some("abc123")
        );
        assert_eq!(version_of(None), None);
    }
}
