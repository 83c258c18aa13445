//! The volume attributes map (`volume_context`): keys of the Azure provider,
//! vaultlet's own `vaultlet.dev/*` keys and kubelet's `csi.storage.k8s.io/*`.

use std::collections::HashMap;

use super::{ObjectSpec, ParamsError};

/// Prefix of the keys kubelet adds with `podInfoOnMount`.
pub const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

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
/// # Errors
/// [`ParamsError`] naming the first bad attribute or object.
pub fn parse_volume_context(ctx: &HashMap<String, String>) -> Result<VolumeParams, ParamsError> {
    let _ = ctx;
    todo!("params helper")
}
