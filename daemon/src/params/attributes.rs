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
pub const SERVICE_ACCOUNT_TOKENS: &str = csi_proto::SERVICE_ACCOUNT_TOKENS_KEY;

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
const ATTESTATION: &str = "vaultlet.dev/attestation";
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
    (ATTESTATION, Treatment::Read),
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A tmpfs mounted at target_path.
    #[default]
    Tmpfs,
    /// A bind of the namespace's FUSE in-memory filesystem.
    Fuse,
}

/// What a confidential volume requires of the node
/// (`vaultlet.dev/attestation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attestation {
    /// `sev-snp`: the node's SEV-SNP evidence must verify under the policy.
    SevSnp,
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
    /// `vaultlet.dev/attestation`: set on confidential volumes.
    pub attestation: Option<Attestation>,
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

    let attestation = get(ATTESTATION)
        .map(|a| {
            a.eq_ignore_ascii_case("sev-snp")
                .then_some(Attestation::SevSnp)
                .ok_or_else(|| invalid(ATTESTATION, "must be sev-snp"))
        })
        .transpose()?;

    let objects = parse_objects(required(OBJECTS)?)?;
    if attestation.is_none()
        && let Some(o) = objects.iter().find(|o| o.release.is_some())
    {
        return Err(ParamsError::Object {
            index: o.index,
            key: "release".to_owned(),
            name: Some(o.name.clone()),
            reason: format!("applies only to confidential volumes ({ATTESTATION}: sev-snp)"),
        });
    }

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
        attestation,
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::params::ObjectType;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const OBJECTS_YAML: &str = "array:\n  - |\n    objectName: s1\n    objectType: secret\n";

    /// A valid minimal volume_context with `changes` inserted (an empty value
    /// is kept as an empty value; use [`without`] to remove a key).
    fn ctx(changes: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            (KEYVAULT_NAME, "kv-test"),
            (TENANT_ID, TENANT),
            (OBJECTS, OBJECTS_YAML),
            (POD_NAMESPACE, "team-a"),
            (POD_UID, "0d6c5a4e-1111-2222-3333-444455556666"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in changes {
            m.insert((*k).to_owned(), (*v).to_owned());
        }
        m
    }

    fn without(mut m: HashMap<String, String>, key: &str) -> HashMap<String, String> {
        m.remove(key);
        m
    }

    fn parse_err(m: &HashMap<String, String>) -> ParamsError {
        parse_volume_context(m).expect_err("must be rejected")
    }

    fn assert_invalid(err: &ParamsError, attribute: &str, hidden: &str) {
        assert!(
            matches!(err, ParamsError::Invalid { attribute: a, .. } if a == attribute),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(attribute), "{msg}");
        assert!(!msg.contains(hidden), "message leaks the value: {msg}");
    }

    fn assert_unsupported(err: &ParamsError, attribute: &str, hidden: &str) {
        assert!(
            matches!(err, ParamsError::Unsupported { attribute: a, .. } if a == attribute),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(attribute), "{msg}");
        assert!(!msg.contains(hidden), "message leaks the value: {msg}");
    }

    fn assert_missing(err: &ParamsError, attribute: &str) {
        assert_eq!(
            err,
            &ParamsError::Missing {
                attribute: attribute.to_owned()
            }
        );
    }

    #[test]
    fn minimal_volume_gets_the_defaults() {
        let p = parse_volume_context(&ctx(&[])).expect("valid");
        assert_eq!(p.keyvault_name, "kv-test");
        assert_eq!(p.tenant_id, TENANT);
        assert_eq!(p.cloud, Cloud::Public);
        assert_eq!(
            (
                p.client_id,
                p.use_vm_managed_identity,
                p.user_assigned_identity_id
            ),
            (None, false, None)
        );
        assert_eq!((p.backend, p.tmpfs_size), (None, None));
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.objects[0].object_type, ObjectType::Secret);
        assert_eq!(
            p.pod,
            PodInfo {
                name: None,
                namespace: "team-a".to_owned(),
                uid: "0d6c5a4e-1111-2222-3333-444455556666".to_owned(),
                service_account_name: None,
                ephemeral: false,
            }
        );
    }

    #[test]
    fn every_read_attribute_is_read() {
        let p = parse_volume_context(&ctx(&[
            (CLOUD_NAME, "azurechinacloud"),
            (CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
            (USE_VM_MANAGED_IDENTITY, "TRUE"),
            (USER_ASSIGNED_IDENTITY_ID, "uai-1"),
            (BACKEND, "Fuse"),
            (TMPFS_SIZE, "64Ki"),
            (POD_NAME, "web-0"),
            (SERVICE_ACCOUNT_NAME, "web"),
            (EPHEMERAL, "True"),
        ]))
        .expect("valid");
        assert_eq!(p.cloud, Cloud::China);
        assert_eq!(
            p.client_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert!(p.use_vm_managed_identity);
        assert_eq!(p.user_assigned_identity_id.as_deref(), Some("uai-1"));
        assert_eq!(p.backend, Some(Backend::Fuse));
        assert_eq!(p.tmpfs_size, Some(65_536));
        assert_eq!(p.pod.name.as_deref(), Some("web-0"));
        assert_eq!(p.pod.service_account_name.as_deref(), Some("web"));
        assert!(p.pod.ephemeral);
    }

    #[test]
    fn attestation_attribute_marks_confidential_volumes() {
        let p = parse_volume_context(&ctx(&[(ATTESTATION, "SEV-SNP")])).expect("valid");
        assert_eq!(p.attestation, Some(Attestation::SevSnp));
        assert_eq!(
            parse_volume_context(&ctx(&[])).expect("valid").attestation,
            None
        );
        let err = parse_err(&ctx(&[(ATTESTATION, "tdx-secret-value")]));
        assert_invalid(&err, ATTESTATION, "tdx-secret-value");
    }

    #[test]
    fn release_outside_a_confidential_volume_names_the_object_key() {
        let objects = "array:\n  - |\n    objectName: s1\n    objectType: secret\n  - |\n    objectName: k1\n    objectType: key\n    release: true\n";
        let err = parse_err(&ctx(&[(OBJECTS, objects)]));
        assert!(err.to_string().starts_with("objects[1].release"), "{err}");
        let p = parse_volume_context(&ctx(&[(OBJECTS, objects), (ATTESTATION, "sev-snp")]))
            .expect("valid");
        assert!(p.objects[1].is_released());
        let objects =
            "array:\n  - |\n    objectName: s1\n    objectType: secret\n    release: false\n";
        let err = parse_err(&ctx(&[(OBJECTS, objects)]));
        assert!(err.to_string().starts_with("objects[0].release"), "{err}");
    }

    #[test]
    fn keyvault_name_is_lowercased() {
        let p = parse_volume_context(&ctx(&[(KEYVAULT_NAME, "KV-Test-01")])).expect("valid");
        assert_eq!(p.keyvault_name, "kv-test-01");
    }

    #[test]
    fn keyvault_name_is_required() {
        assert_missing(&parse_err(&without(ctx(&[]), KEYVAULT_NAME)), KEYVAULT_NAME);
        assert_missing(&parse_err(&ctx(&[(KEYVAULT_NAME, "")])), KEYVAULT_NAME);
    }

    #[test]
    fn keyvault_name_rules_are_enforced_without_echoing_it() {
        for (name, why) in [
            ("zq", "3-24"),
            ("zqzqzqzqzqzqzqzqzqzqzqzqz", "3-24"),
            ("zq_kv", "letters, digits"),
            ("zq.kv", "letters, digits"),
            ("1zqkv", "start with a letter"),
            ("-zqkv", "start with a letter"),
            ("zqkv-", "end with a letter"),
            ("zq--kv", "--"),
        ] {
            let err = parse_err(&ctx(&[(KEYVAULT_NAME, name)]));
            assert_invalid(&err, KEYVAULT_NAME, "zq");
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn keyvault_name_boundaries_are_accepted() {
        for name in ["abc", "a23456789012345678901234", "a-b-c9"] {
            assert!(
                parse_volume_context(&ctx(&[(KEYVAULT_NAME, name)])).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn tenant_is_required() {
        assert_missing(&parse_err(&without(ctx(&[]), TENANT_ID)), TENANT_ID);
        assert_missing(&parse_err(&ctx(&[(TENANT_ID, "")])), TENANT_ID);
    }

    #[test]
    fn tenant_id_with_upper_case_d_is_accepted() {
        let m = without(
            ctx(&[(TENANT_ID_UPPER, "contoso.onmicrosoft.com")]),
            TENANT_ID,
        );
        let p = parse_volume_context(&m).expect("valid");
        assert_eq!(p.tenant_id, "contoso.onmicrosoft.com");
    }

    #[test]
    fn both_tenant_spellings_must_agree() {
        let same = ctx(&[(TENANT_ID_UPPER, &TENANT.to_ascii_uppercase())]);
        assert_eq!(
            parse_volume_context(&same).expect("same tenant").tenant_id,
            TENANT
        );
        let err = parse_err(&ctx(&[(TENANT_ID_UPPER, "zqtenant.example")]));
        assert_invalid(&err, TENANT_ID, "zqtenant");
        assert!(err.to_string().contains("differ"), "{err}");
    }

    #[test]
    fn tenant_must_be_a_guid_or_domain() {
        for t in ["zq tenant", "zq/tenant", "zq..com", "-zq.com", "zq_tenant"] {
            let err = parse_err(&ctx(&[(TENANT_ID, t)]));
            assert_invalid(&err, TENANT_ID, "zq");
        }
    }

    #[test]
    fn c49_cloud_names() {
        for (name, cloud) in [
            ("AzurePublicCloud", Cloud::Public),
            ("AzureChinaCloud", Cloud::China),
            ("AzureUSGovernmentCloud", Cloud::UsGovernment),
            ("azureusgovernmentcloud", Cloud::UsGovernment),
            ("", Cloud::Public),
        ] {
            let p = parse_volume_context(&ctx(&[(CLOUD_NAME, name)])).expect(name);
            assert_eq!(p.cloud, cloud, "{name}");
        }
        assert_eq!(Cloud::China.keyvault_dns_suffix(), "vault.azure.cn");
        assert_eq!(
            Cloud::UsGovernment.authority_host(),
            "https://login.microsoftonline.us"
        );

        let err = parse_err(&ctx(&[(CLOUD_NAME, "ZqBogusCloud")]));
        assert_invalid(&err, CLOUD_NAME, "ZqBogus");
        let msg = err.to_string();
        for valid in [
            "AzurePublicCloud",
            "AzureChinaCloud",
            "AzureUSGovernmentCloud",
        ] {
            assert!(msg.contains(valid), "{msg}");
        }
    }

    #[test]
    fn azure_stack_cloud_is_unsupported() {
        let err = parse_err(&ctx(&[(CLOUD_NAME, "AzureStackCloud")]));
        assert_unsupported(&err, CLOUD_NAME, "zq");
        assert!(err.to_string().contains("AzureStackCloud"), "{err}");
    }

    #[test]
    fn use_vm_managed_identity_must_be_a_boolean() {
        let p = parse_volume_context(&ctx(&[(USE_VM_MANAGED_IDENTITY, "False")])).expect("ok");
        assert!(!p.use_vm_managed_identity);
        let err = parse_err(&ctx(&[(USE_VM_MANAGED_IDENTITY, "zqyes")]));
        assert_invalid(&err, USE_VM_MANAGED_IDENTITY, "zqyes");
    }

    #[test]
    fn backend_must_be_tmpfs_or_fuse() {
        let p = parse_volume_context(&ctx(&[(BACKEND, "TMPFS")])).expect("ok");
        assert_eq!(p.backend, Some(Backend::Tmpfs));
        let err = parse_err(&ctx(&[(BACKEND, "zqramfs")]));
        assert_invalid(&err, BACKEND, "zqramfs");
    }

    #[test]
    fn tmpfs_size_must_parse_and_be_positive() {
        let p = parse_volume_context(&ctx(&[(TMPFS_SIZE, "32Mi")])).expect("ok");
        assert_eq!(p.tmpfs_size, Some(32 << 20));
        let err = parse_err(&ctx(&[(TMPFS_SIZE, "0")]));
        assert_invalid(&err, TMPFS_SIZE, "zq");
        assert!(err.to_string().contains("greater than zero"), "{err}");
        let err = parse_err(&ctx(&[(TMPFS_SIZE, "64 zqKi")]));
        assert_invalid(&err, TMPFS_SIZE, "zq");
    }

    #[test]
    fn objects_is_required() {
        assert_missing(&parse_err(&without(ctx(&[]), OBJECTS)), OBJECTS);
        assert_missing(&parse_err(&ctx(&[(OBJECTS, "")])), OBJECTS);
    }

    #[test]
    fn objects_errors_pass_through() {
        let bad = "array:\n  - |\n    objectName: s1\n    objectType: zqbogus\n";
        let err = parse_err(&ctx(&[(OBJECTS, bad)]));
        assert!(
            matches!(&err, ParamsError::Object { index: 0, key, .. } if key == "objectType"),
            "{err:?}"
        );
    }

    #[test]
    fn pod_namespace_and_uid_are_required() {
        assert_missing(&parse_err(&without(ctx(&[]), POD_NAMESPACE)), POD_NAMESPACE);
        assert_missing(&parse_err(&ctx(&[(POD_UID, "")])), POD_UID);
    }

    #[test]
    fn service_account_tokens_are_never_read_nor_echoed() {
        let token = "zqTOKEN{not json";
        let p = parse_volume_context(&ctx(&[(SERVICE_ACCOUNT_TOKENS, token)])).expect("ignored");
        assert!(!format!("{p:?}").contains("zqTOKEN"));
        let err = parse_err(&ctx(&[
            (SERVICE_ACCOUNT_TOKENS, token),
            (CLOUD_NAME, "bogus"),
        ]));
        assert!(!err.to_string().contains("zqTOKEN"), "{err}");
        assert!(!format!("{err:?}").contains("zqTOKEN"), "{err:?}");
    }

    #[test]
    fn secret_provider_class_is_unsupported_whatever_its_value() {
        for v in ["zqspc", ""] {
            let err = parse_err(&ctx(&[("secretProviderClass", v)]));
            assert_unsupported(&err, "secretProviderClass", "zqspc");
            assert!(
                err.to_string().contains("put the attributes on the volume"),
                "{err}"
            );
        }
    }

    #[test]
    fn cloud_env_file_name_is_unsupported_when_set() {
        let err = parse_err(&ctx(&[("cloudEnvFileName", "/etc/zqenv.json")]));
        assert_unsupported(&err, "cloudEnvFileName", "zqenv");
        assert!(parse_volume_context(&ctx(&[("cloudEnvFileName", "")])).is_ok());
    }

    #[test]
    fn use_pod_identity_true_is_unsupported_false_is_fine() {
        let err = parse_err(&ctx(&[("usePodIdentity", "True")]));
        assert_unsupported(&err, "usePodIdentity", "True");
        for ok in ["false", "FALSE", ""] {
            assert!(
                parse_volume_context(&ctx(&[("usePodIdentity", ok)])).is_ok(),
                "{ok}"
            );
        }
        let err = parse_err(&ctx(&[("usePodIdentity", "zqmaybe")]));
        assert_invalid(&err, "usePodIdentity", "zqmaybe");
    }

    #[test]
    fn use_azure_token_proxy_true_is_unsupported() {
        let err = parse_err(&ctx(&[("useAzureTokenProxy", "true")]));
        assert_unsupported(&err, "useAzureTokenProxy", "zq");
        assert!(parse_volume_context(&ctx(&[("useAzureTokenProxy", "false")])).is_ok());
    }

    #[test]
    fn misspelled_attribute_is_unsupported_with_a_suggestion() {
        let err = parse_err(&ctx(&[("keyVaultName", "zqkv")]));
        assert_unsupported(&err, "keyVaultName", "zqkv");
        assert!(
            err.to_string().contains("did you mean keyvaultName?"),
            "{err}"
        );
    }

    #[test]
    fn unknown_attribute_is_unsupported() {
        for key in ["objectname", "podName", "podNamespace", "podUID"] {
            let err = parse_err(&ctx(&[(key, "zqvalue")]));
            assert_unsupported(&err, key, "zqvalue");
            assert!(err.to_string().contains("unknown attribute"), "{err}");
        }
    }

    #[test]
    fn unknown_attribute_that_does_not_look_like_a_key_is_not_echoed() {
        let err = parse_err(&ctx(&[("zq secret value", "x")]));
        assert_unsupported(&err, "<unrecognised key>", "zq secret");
    }

    #[test]
    fn unknown_vaultlet_attribute_is_unsupported() {
        let err = parse_err(&ctx(&[("vaultlet.dev/zqfeature", "on")]));
        assert_unsupported(&err, "vaultlet.dev/zqfeature", "on:");
    }

    #[test]
    fn foreign_prefixed_attributes_are_ignored() {
        let m = ctx(&[
            ("example.com/anything", "zq"),
            ("csi.storage.k8s.io/pod.labels", "zq"),
            ("secrets-store.csi.k8s.io/used", "true"),
        ]);
        assert!(parse_volume_context(&m).is_ok());
    }

    #[test]
    fn first_bad_key_in_sorted_order_is_reported() {
        let m = ctx(&[("zzz", "1"), ("aaa", "1"), ("secretProviderClass", "x")]);
        for _ in 0..8 {
            assert_unsupported(&parse_err(&m), "aaa", "zq");
        }
    }

    #[test]
    fn the_known_attribute_list_has_no_duplicates() {
        let mut keys: Vec<_> = ATTRIBUTES.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ATTRIBUTES.len());
    }

    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(
                ATTRIBUTES
                    .iter()
                    .map(|(k, _)| (*k).to_owned())
                    .collect::<Vec<_>>()
            ),
            "\\PC{0,20}",
            "vaultlet\\.dev/[a-z]{0,8}",
        ]
    }

    proptest! {
        #[test]
        fn parse_volume_context_never_panics(
            map in prop::collection::hash_map(any_key(), "\\PC{0,40}", 0..12),
            base in any::<bool>(),
        ) {
            let mut m = if base { ctx(&[]) } else { HashMap::new() };
            m.extend(map);
            let _ = parse_volume_context(&m);
        }

        #[test]
        fn errors_never_contain_attribute_values(key in prop::sample::select(
            ATTRIBUTES.iter().map(|(k, _)| *k).filter(|k| *k != OBJECTS).collect::<Vec<_>>()
        )) {
            let value = "zq\u{1}VALUE";
            if let Err(e) = parse_volume_context(&ctx(&[(key, value)])) {
                prop_assert!(!e.to_string().contains("VALUE"), "{}", e);
            }
        }
    }
}
