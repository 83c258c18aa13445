//! The CSI v1 protobuf subset that vaultlet serves, compiled from
//! `proto/csi.proto` with prost and tonic.
//!
//! The proto follows the CSI specification v1 (package `csi.v1`, the spec's
//! message names, field names and field numbers). It declares Identity, Node,
//! and Controller's `ControllerGetCapabilities` only.
//!
//! Fields the spec marks `csi_secret` (every `secrets` map) never appear in
//! `Debug` output, and neither does the `csi.storage.k8s.io/serviceAccount.tokens`
//! entry of `volume_context`: the messages that carry them implement `Debug` by
//! hand and print `[REDACTED]` instead.
#![forbid(unsafe_code)]

/// Generated CSI v1 types, clients (`*_client`) and servers (`*_server`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("csi.v1");
}

use std::collections::HashMap;
use std::fmt;

/// The `volume_context` key under which kubelet passes service-account tokens
/// (JSON `{audience: {token, expirationTimestamp}}`). Its value is a secret.
pub const SERVICE_ACCOUNT_TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";

const REDACTED: &str = "[REDACTED]";

/// Debug view of a `secrets` map: the keys are shown, the values never.
struct SecretMap<'a>(&'a HashMap<String, String>);

impl fmt::Debug for SecretMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_map()
            .entries(keys.into_iter().map(|k| (k, REDACTED)))
            .finish()
    }
}

/// Debug view of a `volume_context` map with the token entry redacted.
struct ContextMap<'a>(&'a HashMap<String, String>);

impl fmt::Debug for ContextMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries: Vec<(&String, &String)> = self.0.iter().collect();
        entries.sort();
        f.debug_map()
            .entries(entries.into_iter().map(|(k, v)| {
                let shown: &str = if k == SERVICE_ACCOUNT_TOKENS_KEY {
                    REDACTED
                } else {
                    v
                };
                (k, shown)
            }))
            .finish()
    }
}

impl fmt::Debug for v1::NodePublishVolumeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePublishVolumeRequest")
            .field("volume_id", &self.volume_id)
            .field("publish_context", &self.publish_context)
            .field("staging_target_path", &self.staging_target_path)
            .field("target_path", &self.target_path)
            .field("volume_capability", &self.volume_capability)
            .field("readonly", &self.readonly)
            .field("secrets", &SecretMap(&self.secrets))
            .field("volume_context", &ContextMap(&self.volume_context))
            .finish()
    }
}

impl fmt::Debug for v1::NodeStageVolumeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeStageVolumeRequest")
            .field("volume_id", &self.volume_id)
            .field("publish_context", &self.publish_context)
            .field("staging_target_path", &self.staging_target_path)
            .field("volume_capability", &self.volume_capability)
            .field("secrets", &SecretMap(&self.secrets))
            .field("volume_context", &ContextMap(&self.volume_context))
            .finish()
    }
}

impl fmt::Debug for v1::NodeExpandVolumeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeExpandVolumeRequest")
            .field("volume_id", &self.volume_id)
            .field("volume_path", &self.volume_path)
            .field("capacity_range", &self.capacity_range)
            .field("staging_target_path", &self.staging_target_path)
            .field("volume_capability", &self.volume_capability)
            .field("secrets", &SecretMap(&self.secrets))
            .field("volume_context", &ContextMap(&self.volume_context))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::SERVICE_ACCOUNT_TOKENS_KEY;
    use super::v1::*;

    const CANARY: &str = "canary-9f2c1e-do-not-print";

    fn secrets() -> std::collections::HashMap<String, String> {
        [
            ("clientid".to_string(), format!("id-{CANARY}")),
            ("clientsecret".to_string(), CANARY.to_string()),
        ]
        .into()
    }

    fn context() -> std::collections::HashMap<String, String> {
        [
            (
                SERVICE_ACCOUNT_TOKENS_KEY.to_string(),
                format!(r#"{{"api://AzureADTokenExchange":{{"token":"{CANARY}"}}}}"#),
            ),
            ("keyvaultName".to_string(), "kv1".to_string()),
        ]
        .into()
    }

    #[test]
    fn publish_request_debug_redacts_secrets_and_token() {
        let req = NodePublishVolumeRequest {
            volume_id: "vol-1".into(),
            target_path: "/t".into(),
            secrets: secrets(),
            volume_context: context(),
            ..Default::default()
        };
        let shown = format!("{req:?} {req:#?}");
        assert!(!shown.contains(CANARY), "{shown}");
        assert!(shown.contains("vol-1"));
        assert!(shown.contains("keyvaultName"));
        assert!(shown.contains("kv1"));
        assert!(shown.contains("clientsecret"));
        assert!(shown.contains("[REDACTED]"));
    }

    #[test]
    fn stage_and_expand_request_debug_redact_secrets() {
        let stage = NodeStageVolumeRequest {
            secrets: secrets(),
            volume_context: context(),
            ..Default::default()
        };
        let expand = NodeExpandVolumeRequest {
            secrets: secrets(),
            volume_context: context(),
            ..Default::default()
        };
        let shown = format!("{stage:?} {expand:?}");
        assert!(!shown.contains(CANARY), "{shown}");
    }
}
