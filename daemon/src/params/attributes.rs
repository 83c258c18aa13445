//! The volume attributes map (`volume_context`): keys of the Azure provider,
//! vaultlet's own `vaultlet.dev/*` keys and kubelet's `csi.storage.k8s.io/*`.
//!
//! Every key vaultlet knows is in one list, [`ATTRIBUTES`]. A key without a
//! `/` that is not in it, and an unknown `vaultlet.dev/*` key, are errors;
//! other prefixed keys belong to someone else and are ignored. Values never
//! appear in errors: the kubelet token entry is not even read here.

use std::collections::HashMap;

use super::{ObjectSpec, ParamsError, display_key, parse_objects, parse_size, suggest};

/// Prefix of the keys kubelet adds with `podInfoOnMount`.
pub const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

/// Prefix of vaultlet's own attributes.
pub const VAULTLET_PREFIX: &str = "vaultlet.dev/";

/// The kubelet entry holding service-account tokens. A secret: `auth` reads
/// it; this module only knows its name.
pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";

const KEYVAULT_NAME: &str = "keyvaultName";
const TENANT_ID: &str = "tenantId";
const TENANT_ID_UPPER: &str = "tenantID";
const CLOUD_NAME: &str = "cloudName";
const CLIENT_ID: &str = "clientID";
const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
const OBJECTS: &str = "objects";
const BACKEND: &str = "vaultlet.dev/backend";
const TMPFS_SIZE: &str = "vaultlet.dev/tmpfs-size";
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";

/// How vaultlet treats a known attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Read by [`parse_volume_context`].
    Read,
    /// Read elsewhere (the token entry, by `auth`); never looked at here.
    ReadElsewhere,
    /// An attribute of the old stack that vaultlet does not support.
    Unsupported {
        /// Which values are an error.
        when: Refused,
        /// Why, and what to do instead.
        reason: &'static str,
    },
}

/// Which values of an unsupported attribute are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Any value, even empty.
    Always,
    /// Any non-empty value.
    NonEmpty,
    /// `true` (case-insensitive); `false` and empty are fine, anything else
    /// is invalid.
    True,
}

/// Every attribute vaultlet knows: the one list.
const ATTRIBUTES: &[(&str, Treatment)] = &[
    (KEYVAULT_NAME, Treatment::Read),
    (TENANT_ID, Treatment::Read),
    (TENANT_ID_UPPER, Treatment::Read),
    (CLOUD_NAME, Treatment::Read),
    (CLIENT_ID, Treatment::Read),
    (USE_VM_MANAGED_IDENTITY, Treatment::Read),
    (USER_ASSIGNED_IDENTITY_ID, Treatment::Read),
    (OBJECTS, Treatment::Read),
    (BACKEND, Treatment::Read),
    (TMPFS_SIZE, Treatment::Read),
    (POD_NAME, Treatment::Read),
    (POD_NAMESPACE, Treatment::Read),
    (POD_UID, Treatment::Read),
    (SERVICE_ACCOUNT_NAME, Treatment::Read),
    (EPHEMERAL, Treatment::Read),
    (SERVICE_ACCOUNT_TOKENS, Treatment::ReadElsewhere),
    (
        "secretProviderClass",
        Treatment::Unsupported {
            when: Refused::Always,
            reason: "SecretProviderClass lookup is not supported yet; put the attributes on the volume",
        },
    ),
    (
        "cloudEnvFileName",
        Treatment::Unsupported {
            when: Refused::NonEmpty,
            reason: "custom cloud environment files are not supported; use cloudName",
        },
    ),
    (
        "usePodIdentity",
        Treatment::Unsupported {
            when: Refused::True,
            reason: "AAD pod identity is not supported; use workload identity (clientID)",
        },
    ),
    (
        "useAzureTokenProxy",
        Treatment::Unsupported {
            when: Refused::True,
            reason: "the Azure token proxy is not supported; use workload identity (clientID)",
        },
    ),
];

/// The valid `cloudName` values, for errors.
const CLOUD_NAMES: &str = "AzurePublicCloud, AzureChinaCloud, AzureUSGovernmentCloud";

/// Azure cloud, from `cloudName` (case-insensitive; default public).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// `AzurePublicCloud`: vault suffix `vault.azure.net`, login `login.microsoftonline.com`.
    Public,
    /// `AzureChinaCloud`: `vault.azure.cn`, `login.chinacloudapi.cn`.
    China,
    /// `AzureUSGovernmentCloud`: `vault.usgovcloudapi.net`, `login.microsoftonline.us`.
    UsGovernment,
}

impl Cloud {
    /// Parses `cloudName` (case-insensitive; empty means public).
    fn parse(s: &str) -> Result<Self, ParamsError> {
        const CLOUDS: [(&str, Cloud); 3] = [
            ("AzurePublicCloud", Cloud::Public),
            ("AzureChinaCloud", Cloud::China),
            ("AzureUSGovernmentCloud", Cloud::UsGovernment),
        ];
        if s.is_empty() {
            return Ok(Cloud::Public);
        }
        if let Some(cloud) = CLOUDS
            .iter()
            .find_map(|&(name, c)| s.eq_ignore_ascii_case(name).then_some(c))
        {
            return Ok(cloud);
        }
        if s.eq_ignore_ascii_case("AzureStackCloud") {
            return Err(ParamsError::Unsupported {
                attribute: CLOUD_NAME.to_owned(),
                reason: format!("AzureStackCloud is not supported; use one of {CLOUD_NAMES}"),
            });
        }
        Err(invalid(
            CLOUD_NAME,
            &format!("must be one of {CLOUD_NAMES} (case-insensitive)"),
        ))
    }

    /// Key Vault DNS suffix of this cloud (no leading dot).
    pub fn keyvault_dns_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGovernment => "vault.usgovcloudapi.net",
        }
    }

    /// Entra ID authority host of this cloud, as an `https://` URL without a
    /// trailing slash.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
        }
    }
}

/// Delivery backend (`vaultlet.dev/backend`, or `--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A tmpfs mounted at target_path.
    Tmpfs,
    /// A bind of the namespace's FUSE in-memory filesystem.
    Fuse,
}

/// Pod information kubelet passes with `podInfoOnMount`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodInfo {
    /// `csi.storage.k8s.io/pod.name`, if present.
    pub name: Option<String>,
    /// `csi.storage.k8s.io/pod.namespace` (required).
    pub namespace: String,
    /// `csi.storage.k8s.io/pod.uid` (required).
    pub uid: String,
    /// `csi.storage.k8s.io/serviceAccount.name`, if present.
    pub service_account_name: Option<String>,
    /// `csi.storage.k8s.io/ephemeral == "true"`.
    pub ephemeral: bool,
}

/// Everything a volume asks for, validated. Holds no secret: the token entry
/// of `volume_context` is read by `auth`, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    /// `keyvaultName`, lowercased (Key Vault names are case-insensitive).
    pub keyvault_name: String,
    /// `tenantId` or `tenantID`.
    pub tenant_id: String,
    /// `cloudName`.
    pub cloud: Cloud,
    /// `clientID`: workload identity client id.
    pub client_id: Option<String>,
    /// `useVMManagedIdentity == "true"` (case-insensitive).
    pub use_vm_managed_identity: bool,
    /// `userAssignedIdentityID`.
    pub user_assigned_identity_id: Option<String>,
    /// The parsed `objects` array, in order.
    pub objects: Vec<ObjectSpec>,
    /// `vaultlet.dev/backend`, if set.
    pub backend: Option<Backend>,
    /// `vaultlet.dev/tmpfs-size` in bytes, if set.
    pub tmpfs_size: Option<u64>,
    /// Kubelet's pod keys.
    pub pod: PodInfo,
}

/// Parses and validates a `volume_context` map.
///
/// Checks, in order: unknown and unsupported keys (sorted by key), kubelet's
/// pod keys, `keyvaultName`, the tenant, `cloudName`, the identity keys,
/// `vaultlet.dev/*`, then `objects`. Empty values count as unset.
///
/// # Errors
/// [`ParamsError`] naming the first bad attribute or object.
pub fn parse_volume_context(ctx: &HashMap<String, String>) -> Result<VolumeParams, ParamsError> {
    check_keys(ctx)?;
    let get = |key: &str| ctx.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let required = |key: &str| {
        get(key).ok_or_else(|| ParamsError::Missing {
            attribute: key.to_owned(),
        })
    };

    let pod = PodInfo {
        name: get(POD_NAME).map(str::to_owned),
        namespace: required(POD_NAMESPACE)?.to_owned(),
        uid: required(POD_UID)?.to_owned(),
        service_account_name: get(SERVICE_ACCOUNT_NAME).map(str::to_owned),
        ephemeral: get(EPHEMERAL).is_some_and(|v| v.eq_ignore_ascii_case("true")),
    };

    let keyvault_name = required(KEYVAULT_NAME)?;
    check_keyvault_name(keyvault_name).map_err(|reason| invalid(KEYVAULT_NAME, reason))?;

    let tenant_id = match (get(TENANT_ID), get(TENANT_ID_UPPER)) {
        (None, None) => {
            return Err(ParamsError::Missing {
                attribute: TENANT_ID.to_owned(),
            });
        }
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(invalid(
                TENANT_ID,
                "tenantId and tenantID are both set and differ; set one",
            ));
        }
        (Some(t), _) => (TENANT_ID, t),
        (None, Some(t)) => (TENANT_ID_UPPER, t),
    };
    if !is_tenant(tenant_id.1) {
        return Err(invalid(tenant_id.0, "must be a tenant GUID or domain name"));
    }

    let cloud = Cloud::parse(get(CLOUD_NAME).unwrap_or_default())?;
    let client_id = get(CLIENT_ID).map(str::to_owned);
    let use_vm_managed_identity = match get(USE_VM_MANAGED_IDENTITY) {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| invalid(USE_VM_MANAGED_IDENTITY, MUST_BE_BOOL))?,
    };
    let user_assigned_identity_id = get(USER_ASSIGNED_IDENTITY_ID).map(str::to_owned);

    let backend = get(BACKEND)
        .map(|b| {
            [("tmpfs", Backend::Tmpfs), ("fuse", Backend::Fuse)]
                .into_iter()
                .find_map(|(name, backend)| b.eq_ignore_ascii_case(name).then_some(backend))
                .ok_or_else(|| invalid(BACKEND, "must be tmpfs or fuse"))
        })
        .transpose()?;
    let tmpfs_size = get(TMPFS_SIZE)
        .map(|s| match parse_size(s) {
            Ok(0) => Err(invalid(TMPFS_SIZE, "must be greater than zero")),
            Ok(n) => Ok(n),
            Err(reason) => Err(invalid(TMPFS_SIZE, &reason)),
        })
        .transpose()?;

    let objects = parse_objects(required(OBJECTS)?)?;

    Ok(VolumeParams {
        keyvault_name: keyvault_name.to_ascii_lowercase(),
        tenant_id: tenant_id.1.to_owned(),
        cloud,
        client_id,
        use_vm_managed_identity,
        user_assigned_identity_id,
        objects,
        backend,
        tmpfs_size,
        pod,
    })
}

const MUST_BE_BOOL: &str = "must be true or false";

fn invalid(attribute: &str, reason: &str) -> ParamsError {
    ParamsError::Invalid {
        attribute: attribute.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `true`/`false`, case-insensitive.
fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Refuses unknown keys and the unsupported attributes of the old stack.
/// Keys are visited in sorted order so the first error is deterministic.
fn check_keys(ctx: &HashMap<String, String>) -> Result<(), ParamsError> {
    let mut keys: Vec<&str> = ctx.keys().map(String::as_str).collect();
    keys.sort_unstable();
    for key in keys {
        match ATTRIBUTES.iter().find(|(known, _)| *known == key) {
            Some(&(_, Treatment::Unsupported { when, reason })) => {
                let value = ctx.get(key).map(String::as_str).unwrap_or_default();
                check_unsupported(key, value, when, reason)?;
            }
            Some(_) => {}
            None if key.starts_with(VAULTLET_PREFIX) || !key.contains('/') => {
                let reason = match suggest(key, ATTRIBUTES.iter().map(|(k, _)| *k)) {
                    Some(k) => format!("unknown attribute; did you mean {k}?"),
                    None => "unknown attribute".to_owned(),
                };
                return Err(ParamsError::Unsupported {
                    attribute: display_key(key),
                    reason,
                });
            }
            // Another component's prefixed key (kubelet's, the driver's).
            None => {}
        }
    }
    Ok(())
}

fn check_unsupported(
    key: &str,
    value: &str,
    when: Refused,
    reason: &str,
) -> Result<(), ParamsError> {
    let refused = match when {
        Refused::Always => true,
        Refused::NonEmpty => !value.is_empty(),
        Refused::True if value.is_empty() => false,
        Refused::True => parse_bool(value).ok_or_else(|| invalid(key, MUST_BE_BOOL))?,
    };
    if refused {
        return Err(ParamsError::Unsupported {
            attribute: key.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(())
}

/// Key Vault names: 3–24 of `[0-9A-Za-z-]`, starting with a letter, ending
/// with a letter or digit, without `--`.
fn check_keyvault_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if !(3..=24).contains(&bytes.len()) {
        return Err("must be 3-24 characters long");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    {
        return Err("may contain only letters, digits and -");
    }
    if !bytes.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err("must start with a letter");
    }
    if !bytes.last().is_some_and(u8::is_ascii_alphanumeric) {
        return Err("must end with a letter or digit");
    }
    if name.contains("--") {
        return Err("must not contain --");
    }
    Ok(())
}

/// A tenant GUID or domain name: dot-separated labels of 1–63 letters,
/// digits and `-`, not starting or ending with `-`, at most 253 in all. A
/// GUID is one such label.
fn is_tenant(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
