//! vaultlet: a CSI node daemon that delivers Azure Key Vault objects into pod
//! volumes, keeping plaintext only in memory.
//!
//! Module map (DESIGN §2): `params` parses volume attributes, `attest`
//! gathers and verifies the node's SEV-SNP evidence, `auth` picks
//! and caches the identity, `keyvault` fetches through the official Azure
//! SDK, `store` holds secret buffers, `mount` writes and tears down volumes,
//! `volume` tracks published volumes, `csi` serves the gRPC API,
//! `telemetry` serves metrics, `config` and `server` wire it together, and
//! `demo` (feature `demo`) plays the whole job locally.
#![warn(missing_docs)]

pub mod attest;
pub mod auth;
pub mod config;
pub mod csi;
#[cfg(feature = "demo")]
pub mod demo;
pub mod keyvault;
pub mod mount;
pub mod params;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod volume;
